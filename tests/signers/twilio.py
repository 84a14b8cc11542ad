"""Twilio's `RequestValidator` (PyPI `twilio`) signs a webhook request:

    twilio.py form TOKEN URL [ALGORITHM]   stdin: a JSON list of [name, value] pairs
    twilio.py json TOKEN URL [ALGORITHM]   stdin: the JSON body

`form` prints the signature of URL and the POST parameters (a name given several
times is passed as a list, as a framework's MultiDict gives it). `json` appends
`bodySHA256=<hex SHA-256 of the body>` to URL as Twilio does for a JSON body and
prints that URL and the signature, on one line, space-separated. ALGORITHM is
HMAC_SHA1 (the default, with the Auth Token) or HMAC_SHA256 (a SharedKey). Each
signature is checked with the library's own `validate` before it is printed."""

import json
import os
import sys

# This script's own folder is first on the path, and its name would shadow the
# `twilio` package.
here = os.path.dirname(os.path.abspath(__file__))
sys.path = [entry for entry in sys.path if os.path.abspath(entry or ".") != here]
from twilio.request_validator import RequestValidator


class MultiDict(dict):
    """Parameters as Flask's MultiDict offers them to the validator."""

    def getall(self, name):
        return self[name]


mode, token, url = sys.argv[1:4]
algorithm = sys.argv[4] if len(sys.argv) > 4 else None
validator = RequestValidator(token)
stdin = sys.stdin.buffer.read().decode()

if mode == "form":
    params = MultiDict()
    for name, value in json.loads(stdin):
        params.setdefault(name, []).append(value)
    signature = validator.compute_signature(url, params, algorithm)
    assert validator.validate(url, params, signature, algorithm)
    print(signature)
elif mode == "json":
    url += ("&" if "?" in url else "?") + "bodySHA256=" + validator.compute_hash(stdin)
    signature = validator.compute_signature(url, {}, algorithm)
    assert validator.validate(url, stdin, signature, algorithm)
    print(url, signature)
else:
    sys.exit(f"unknown mode {mode!r} (form, json)")
