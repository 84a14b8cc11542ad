//! The text of a notification: one line a person can read at a glance, built from
//! the event as its source plugin stored it (GitHub's push body; Stripe's event,
//! with the fetched `invoice` when the stripe plugin's follow-up is configured).

use serde_json::Value;

pub fn describe(kind: &str, id: &str, payload: &Value) -> String {
    match kind {
        "github.push" => push(payload),
        "stripe.invoice.paid" => invoice_paid(payload),
        _ => format!("{kind} ({id})"),
    }
}

/// `alice pushed 2 commits to acme/widgets main: https://github.com/...compare/...`
fn push(payload: &Value) -> String {
    let who = text(&payload["pusher"]["name"])
        .or_else(|| text(&payload["sender"]["login"]))
        .unwrap_or("someone");
    let repository = text(&payload["repository"]["full_name"]).unwrap_or("a repository");
    let git_ref = text(&payload["ref"]).unwrap_or("");
    let branch = git_ref
        .strip_prefix("refs/heads/")
        .or_else(|| git_ref.strip_prefix("refs/tags/"))
        .unwrap_or(git_ref);
    let commits = payload["commits"].as_array().map_or(0, Vec::len);
    let plural = if commits == 1 { "" } else { "s" };
    let mut line = format!("{who} pushed {commits} commit{plural} to {repository} {branch}");
    if let Some(compare) = text(&payload["compare"]) {
        line.push_str(": ");
        line.push_str(compare);
    }
    line
}

/// `Invoice in_1 paid: 20.00 USD by jenny@example.com https://invoice.stripe.com/...`
fn invoice_paid(payload: &Value) -> String {
    // The fetched invoice is the current state; the event's object is the fallback.
    let invoice = if payload["invoice"].is_object() {
        &payload["invoice"]
    } else {
        &payload["data"]["object"]
    };
    let id = text(&invoice["id"]).unwrap_or("(no id)");
    let mut line = format!("Invoice {id} paid");
    if let (Some(amount), Some(currency)) =
        (invoice["amount_paid"].as_i64(), text(&invoice["currency"]))
    {
        line.push_str(&format!(": {}", money(amount, currency)));
    }
    if let Some(customer) = text(&invoice["customer_email"]).or_else(|| text(&invoice["customer"]))
    {
        line.push_str(&format!(" by {customer}"));
    }
    if let Some(link) = text(&invoice["hosted_invoice_url"]) {
        line.push_str(&format!(" {link}"));
    }
    line
}

/// Stripe amounts are in the currency's smallest unit: cents for most, whole units
/// for the zero-decimal currencies.
fn money(amount: i64, currency: &str) -> String {
    const ZERO_DECIMAL: [&str; 16] = [
        "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
        "xaf", "xof", "xpf",
    ];
    let code = currency.to_ascii_uppercase();
    if ZERO_DECIMAL.contains(&currency.to_ascii_lowercase().as_str()) {
        format!("{amount} {code}")
    } else {
        let sign = if amount < 0 { "-" } else { "" };
        let cents = amount.unsigned_abs();
        format!("{sign}{}.{:02} {code}", cents / 100, cents % 100)
    }
}

fn text(value: &Value) -> Option<&str> {
    value.as_str().filter(|s| !s.is_empty())
}
