"""Interoperability checks against PyJWT, driven by the Rust integration tests.

    verify TOKEN JWKS_JSON ISSUER AUDIENCE   -> prints the claims as JSON, exit 0 if valid
    sign-hs256 SECRET KID CLAIMS_JSON        -> prints a token signed by PyJWT
    sign-eddsa SEED_B64URL KID CLAIMS_JSON   -> prints a token signed by PyJWT
"""
import base64
import json
import sys

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify(token, jwks_json, issuer, audience):
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for k in json.loads(jwks_json)["keys"]}
    jwk = keys[header["kid"]]
    key = jwt.PyJWK(jwk)
    claims = jwt.decode(
        token,
        key.key,
        algorithms=[jwk["alg"]],
        audience=audience,
        issuer=issuer,
        options={"require": ["exp", "iat", "nbf", "iss", "aud", "sub", "jti"]},
    )
    print(json.dumps(claims))


def sign(key, algorithm, kid, claims_json):
    headers = {"kid": kid, "typ": "at+jwt"}
    print(jwt.encode(json.loads(claims_json), key, algorithm=algorithm, headers=headers))


def main(argv):
    command = argv[1]
    if command == "verify":
        verify(*argv[2:6])
    elif command == "sign-hs256":
        sign(argv[2].encode(), "HS256", argv[3], argv[4])
    elif command == "sign-eddsa":
        sign(Ed25519PrivateKey.from_private_bytes(b64url(argv[2])), "EdDSA", argv[3], argv[4])
    else:
        raise SystemExit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
