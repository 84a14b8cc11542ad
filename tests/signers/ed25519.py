"""Ed25519 with libsodium (PyNaCl): `ed25519.py SEED_HEX` signs standard input and
prints `PUBLIC_KEY_HEX SIGNATURE_HEX`. Discord signs timestamp + body this way."""

import sys

from nacl.signing import SigningKey

key = SigningKey(bytes.fromhex(sys.argv[1]))
signed = key.sign(sys.stdin.buffer.read())
print(key.verify_key.encode().hex(), signed.signature.hex())
