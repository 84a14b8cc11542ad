//! `hookhost new <id> --lang ...`: writes a plugin project that builds with one
//! command (`./build.sh`, which runs this repository's `scripts/build-plugin`) and
//! passes `hookhost check`. The templates live in `host/templates/`; each project
//! gets its own copy of the contract (`hookhost:plugin@0.2.0`, from
//! `wit/v0.2.0/plugin.wit`) in `wit/plugin.wit`.

use std::path::Path;

use anyhow::{bail, Context, Result};
use hookhost::plugins::id::is_valid_plugin_id;

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
    C,
    Go,
}

/// `(path in the project, template text)`; `{{id}}`, `{{lang}}` and `{{repo}}` are
/// replaced when the project is written.
fn files(lang: Lang) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![
        (
            "wit/plugin.wit",
            include_str!("../../wit/v0.2.0/plugin.wit"),
        ),
        ("build.sh", include_str!("../templates/build.sh")),
    ];
    files.extend(match lang {
        Lang::Rust => vec![
            ("Cargo.toml", include_str!("../templates/rust/Cargo.toml")),
            ("src/lib.rs", include_str!("../templates/rust/src/lib.rs")),
        ],
        Lang::Python => vec![("app.py", include_str!("../templates/python/app.py"))],
        Lang::Js => vec![("plugin.js", include_str!("../templates/js/plugin.js"))],
        Lang::C => vec![("plugin.c", include_str!("../templates/c/plugin.c"))],
        Lang::Go => vec![(
            "export_hookhost_plugin_guest/guest.go",
            include_str!("../templates/go/export_hookhost_plugin_guest/guest.go"),
        )],
    });
    files
}

fn lang_name(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
        Lang::C => "c",
        Lang::Go => "go",
    }
}

/// Writes the project for plugin `id` into `dir`, which must not exist or be empty.
pub fn run(id: &str, lang: Lang, dir: &Path) -> Result<()> {
    if !is_valid_plugin_id(id) {
        bail!(
            "{id:?} is not a plugin id: use 1-64 of a-z 0-9 - _, starting with a letter or digit"
        );
    }
    if dir.exists()
        && dir
            .read_dir()
            .with_context(|| format!("reading {}", dir.display()))?
            .next()
            .is_some()
    {
        bail!("{} already exists and is not empty", dir.display());
    }
    // The repository this binary was built from holds the toolchain scripts; a
    // project's build.sh points there unless HOOKHOST_REPO says otherwise.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."))
        .display()
        .to_string();
    for (path, template) in files(lang) {
        let text = template
            .replace("{{id}}", id)
            .replace("{{lang}}", lang_name(lang))
            .replace("{{repo}}", &repo);
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        if path == "build.sh" {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o755))
                .with_context(|| format!("making {} executable", target.display()))?;
        }
    }
    println!(
        "created {} ({} plugin {id}); build it with {}/build.sh, then: hookhost check {}/{id}.wasm",
        dir.display(),
        lang_name(lang),
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_names_the_plugin_and_no_placeholder_survives() {
        let dir = tempfile::tempdir().unwrap();
        for lang in [Lang::Rust, Lang::Python, Lang::Js, Lang::C, Lang::Go] {
            let project = dir.path().join(lang_name(lang));
            run("acme-hooks", lang, &project).unwrap();
            for (path, _) in files(lang) {
                let text = std::fs::read_to_string(project.join(path)).unwrap();
                for placeholder in ["{{id}}", "{{lang}}", "{{repo}}"] {
                    assert!(
                        !text.contains(placeholder),
                        "{path} ({lang:?}) keeps {placeholder}"
                    );
                }
            }
        }
    }

    #[test]
    fn refuses_a_bad_id_and_a_non_empty_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(run("Bad Id", Lang::Rust, &dir.path().join("x")).is_err());
        std::fs::write(dir.path().join("file"), "x").unwrap();
        let error = run("ok", Lang::Rust, dir.path()).unwrap_err();
        assert!(error.to_string().contains("not empty"), "{error}");
    }
}
