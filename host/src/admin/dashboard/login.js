// A link to the dashboard from another site arrives without the SameSite=Strict
// session cookie, so a logged-in browser sees this form. A request from this page
// does carry the cookie: if it is accepted, show the dashboard straight away.
"use strict";
fetch("/api/plugins", { credentials: "same-origin" })
  .then((response) => {
    if (response.ok) location.replace("/");
  })
  .catch(() => {});
