# Seed 000's verify_webhook_signature, copied verbatim, run against a captured delivery.
# usage: python3 verify_seed000.py BODY_FILE SIGNATURE SECRET  -> exit 0 when valid
import hmac
import hashlib
import sys

def verify_webhook_signature(payload, signature, secret):
    expected_signature = hmac.new(
        secret.encode('utf-8'),
        payload.encode('utf-8'),
        hashlib.sha256
    ).hexdigest()
    return hmac.compare_digest(f"sha256={expected_signature}", signature)

with open(sys.argv[1], encoding="utf-8") as f:
    payload = f.read()
sys.exit(0 if verify_webhook_signature(payload, sys.argv[2], sys.argv[3]) else 1)
