"""Registry pseudonyms: <CENTRE>-<6 random Crockford base32 characters>.

Nothing in a pseudonym derives from a person: the suffix comes from the operating system's
cryptographic random source. 32**6 ≈ 10^9 suffixes per centre, so a collision is rare and is
simply drawn again. Only the registry issues them, for web entry and for an import alike: a file
names a patient new to the registry by its own local key, never by a pseudonym it made up.
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


# 256 byte values onto 32 characters, 8 each: a random byte gives every character the same chance.
_BYTE_TO_CHARACTER = bytes(ord(CROCKFORD_BASE32[byte % len(CROCKFORD_BASE32)]) for byte in range(256))


def unique_pseudonyms(centre_codes, taken):
    """One fresh pseudonym per entry of `centre_codes` (in that order), all different;
    `taken(candidates)` returns the set of those already in use. For many new patients at once:
    one draw from the random source and one `taken` call per round (a second round is rare)."""
    issued = [None] * len(centre_codes)
    pending = list(range(len(centre_codes)))
    while pending:
        suffixes = secrets.token_bytes(SUFFIX_LENGTH * len(pending)).translate(_BYTE_TO_CHARACTER).decode()
        candidates = {index: f"{centre_codes[index]}-{suffixes[n * SUFFIX_LENGTH:(n + 1) * SUFFIX_LENGTH]}"
                      for n, index in enumerate(pending)}
        in_use = taken(list(candidates.values())) | set(filter(None, issued))
        seen, pending = set(), []
        for index, candidate in candidates.items():
            if candidate in in_use or candidate in seen:
                pending.append(index)
            else:
                seen.add(candidate)
                issued[index] = candidate
    return issued
