"""Registry pseudonyms: <CENTRE>-<6 random Crockford base32 characters>.

Nothing in a pseudonym derives from a person: the suffix comes from the operating system's
cryptographic random source. 32**6 ≈ 10^9 suffixes per centre, so a collision is rare and is
simply drawn again.
"""
import re
import secrets

CROCKFORD_BASE32 = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # no I, L, O, U: nothing to misread
SUFFIX_LENGTH = 6
ISSUED_PATTERN = re.compile(rf"^[A-Z]{{2,8}}-[{CROCKFORD_BASE32}]{{{SUFFIX_LENGTH}}}$")


def new_pseudonym(centre_code, *, rng=secrets):
    return f"{centre_code}-" + "".join(rng.choice(CROCKFORD_BASE32) for _ in range(SUFFIX_LENGTH))


def unique_pseudonym(centre_code, taken):
    """A fresh pseudonym for the centre; `taken(pid)` says whether one is already in use."""
    while True:
        candidate = new_pseudonym(centre_code)
        if not taken(candidate):
            return candidate
