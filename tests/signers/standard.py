"""Standard Webhooks signatures over standard input (the body), made by the
official `standardwebhooks` library for v1 (HMAC-SHA256) and by libsodium
(PyNaCl) for v1a (Ed25519, which that library does not sign), exactly as the
spec defines them: the signed content is `{msg_id}.{timestamp}.{body}`.

    standard.py v1 SECRET MSG_ID TIMESTAMP     prints v1,<base64 signature>
    standard.py v1a SEED_HEX MSG_ID TIMESTAMP  prints v1a,<base64 signature>
    standard.py whpk SEED_HEX                  prints whpk_<base64 public key>
"""

import base64
import sys
from datetime import datetime, timezone

from nacl.signing import SigningKey
from standardwebhooks.webhooks import Webhook

scheme = sys.argv[1]
if scheme == "v1":
    secret, msg_id, timestamp = sys.argv[2:5]
    sent = datetime.fromtimestamp(int(timestamp), tz=timezone.utc)
    # The library signs text; the bodies the tests send this way are UTF-8.
    print(Webhook(secret).sign(msg_id, sent, sys.stdin.buffer.read().decode()))
elif scheme == "v1a":
    seed, msg_id, timestamp = sys.argv[2:5]
    signed = f"{msg_id}.{timestamp}.".encode() + sys.stdin.buffer.read()
    signature = SigningKey(bytes.fromhex(seed)).sign(signed).signature
    print("v1a," + base64.b64encode(signature).decode())
elif scheme == "whpk":
    key = SigningKey(bytes.fromhex(sys.argv[2])).verify_key.encode()
    print("whpk_" + base64.b64encode(key).decode())
else:
    sys.exit(f"unknown scheme {scheme!r} (v1, v1a, whpk)")
