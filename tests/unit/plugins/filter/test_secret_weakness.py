"""secret_weakness tells why an operator-supplied secret is too weak, without ever repeating any part of it."""

import random
import re
import secrets
import string

import pytest

from ansible_collections.celeryops.stack.plugins.filter.secret_weakness import (
    COMMON_WORDS,
    FilterModule,
    entropy_bits,
    secret_weakness,
)

ALNUM = string.ascii_letters + string.digits
SEQUENCE = "a run or a keyboard/alphabet/digit sequence makes up most of it"
ENTROPY = re.compile(r"^about \d+ bits of entropy, below \d+$")
COMMON = re.compile(r"^built around a common password \(([a-z0-9]+)\)$")


def generated(length):
    """What Ansible's password lookup generates with chars=ascii_letters,digits."""
    return "".join(secrets.choice(ALNUM) for _index in range(length))


def assert_reveals_nothing(secret, reason):
    """The reason holds no 4-character piece of the secret, case aside, besides the public dictionary word."""
    assert secret not in reason
    rest = reason.lower()
    common = COMMON.match(reason)
    if common:
        assert common.group(1) in COMMON_WORDS
        rest = rest.replace(common.group(1), "")
    folded = secret.lower()
    pieces = {folded[start : start + 4] for start in range(len(folded) - 3)}
    assert [piece for piece in pieces if piece in rest] == []


# ---------------------------------------------------------------------------------------------------------------
# The examples of the brief, and the reason each gets.

WEAK = [
    ("aaaaaaaaaaaaaaaaaaaa", "only 1 distinct character"),
    ("abcdefghijklmnopqrstu", SEQUENCE),
    ("1234567890123456", "built around a common password (123456)"),
    ("qwertyuiopasdfgh", SEQUENCE),
    ("Password1234567!", "built around a common password (password)"),
    ("changemechangeme", "built around a common password (changeme)"),
    ("celerycelerycelery", "only 5 distinct characters"),
    ("P@ssw0rdP@ssw0rd", "built around a common password (password)"),
]

STRONG = [
    "correct horse battery staple",
    "gT4kP9xQ2mW7zL5n",
    "Tr0ub4dor&3_Zq!x",
    "Grüße aus Köln 42!",
    "Xk9#mQ2!admin-7Lp",
    "kqzmwxvprtlnbhgf",
    "xC3vq8LrZ0pNe5TaY2wKj7HbM4sDf9GuR1iQo6Vz",
]


@pytest.mark.parametrize(("secret", "reason"), WEAK)
def test_the_weak_examples_fail_with_their_reason(secret, reason):
    assert secret_weakness(secret) == reason


@pytest.mark.parametrize("secret", STRONG)
def test_the_strong_examples_pass(secret):
    assert secret_weakness(secret) == ""


# ---------------------------------------------------------------------------------------------------------------
# Each rule, in order.


@pytest.mark.parametrize("value", [None, 12, 3.5, True, b"changemechangeme-bytes", ["x" * 20], {"password": "x"}])
def test_a_value_that_is_not_a_string(value):
    assert secret_weakness(value) == "not a string"


@pytest.mark.parametrize(
    ("secret", "options", "reason"),
    [
        ("", {}, "shorter than 16 characters (got 0)"),
        ("short", {}, "shorter than 16 characters (got 5)"),
        ("Xk9#mQ2!v", {}, "shorter than 16 characters (got 9)"),
        ("Xk9#mQ2!vL7$pRz", {}, "shorter than 16 characters (got 15)"),
        ("gT4kP9xQ2mW7zL5n", {"min_length": 24}, "shorter than 24 characters (got 16)"),
        ("gT4kP9xQ", {"min_length": 8, "min_bits": 40}, ""),
        ("gT4kP9xQ", {"min_length": "8", "min_bits": "40"}, ""),
    ],
)
def test_length(secret, options, reason):
    assert secret_weakness(secret, **options) == reason


def test_spaces_count_nothing_is_stripped():
    assert secret_weakness("Xk9#mQ2!vL7$pRz") == "shorter than 16 characters (got 15)"
    assert secret_weakness("Xk9#mQ2!vL7$pRz ") == ""
    # Leading and trailing spaces count as characters, and as one more distinct character.
    assert secret_weakness("   Xk9#mQ2!v    ") == ""


@pytest.mark.parametrize(
    ("secret", "reason"),
    [
        ("aaaaaaaaaaaaaaaaaaaa", "only 1 distinct character"),
        ("abababababababab", "only 2 distinct characters"),
        ("abcabcabcabcabcabc", "only 3 distinct characters"),
        ("aB3$aB3$aB3$aB3$", "only 4 distinct characters"),
        ("r00tr00tr00tr00t", "only 3 distinct characters"),
        # A quarter of the length: 36 characters need 9 distinct ones, 32 need 8 (these 32 fail on the repeats).
        ("Zq7#Lm2!" * 4 + "Zq7#", "only 8 distinct characters"),
        ("Zq7#Lm2!" * 4, SEQUENCE),
    ],
)
def test_too_few_distinct_characters(secret, reason):
    assert secret_weakness(secret) == reason


def test_distinct_characters_needed_are_at_least_six_and_at_most_ten():
    assert secret_weakness("Zq7#Lm2!", min_length=8, min_bits=0) == ""
    assert secret_weakness("Zq7#Lm2", min_length=7, min_bits=0) == ""
    assert secret_weakness("Zq7#L", min_length=5, min_bits=0) == "only 5 distinct characters"
    rng = random.Random(4)  # noqa: S311 (repeatable test data, not a secret)
    assert secret_weakness("".join(rng.choice("Zq7#Lm2!xW") for _index in range(200)), min_bits=0) == ""
    assert secret_weakness("".join(rng.choice("Zq7#Lm2!x") for _index in range(200))) == "only 9 distinct characters"


@pytest.mark.parametrize(
    ("secret", "word"),
    [
        ("changemechangeme", "changeme"),
        ("CHANGEMEchangeme", "changeme"),
        ("P@ssw0rdP@ssw0rd", "password"),
        ("passwordpassword", "password"),
        ("Password1234567!", "password"),
        ("1234567890123456", "123456"),
        ("RabbitMQ#2024!xy", "rabbitmq"),
        ("Adm1n1strat0r!42", "administrator"),
        ("$uperv1sor_2024x", "supervisor"),
        ("monitoring-pass!", "monitoring"),
        ("flower.flower.42", "flower"),
        ("trustno1trustno1", "trustno1"),
        ("IloveyouIloveyou", "iloveyou"),
        ("guestguestguest!", "guest"),
        ("L3tm31n!L3tm31n!", "letmein"),
        ("Dj4ng0-dj4ng0-99", "django"),
    ],
)
def test_built_around_a_common_password(secret, word):
    assert secret_weakness(secret) == f"built around a common password ({word})"


@pytest.mark.parametrize(
    "secret",
    [
        # The word covers less than half of the secret.
        "Xk9#mQ2!admin-7Lp",
        "celery-Xk9#mQ2!vL7$pRz",
        "Zq7#vL2!rabbitmq-Xk9#mQ2!tP4w",
    ],
)
def test_a_common_word_in_a_small_part_is_fine(secret):
    assert secret_weakness(secret) == ""


@pytest.mark.parametrize(
    "secret",
    [
        "abcdefghijklmnopqrstu",
        "zyxwvutsrqponmlk",
        "qwertyuiopasdfgh",
        "0987654321poiuyt",
        "zxcvbnm,./asdfgh",
        "Xk9#mQ2!Xk9#mQ2!Xk9#mQ2!",
        "AbCdEfGhIjKlMnOpQrSt",
    ],
)
def test_runs_sequences_and_repeats_make_up_most(secret):
    assert secret_weakness(secret) == SEQUENCE


@pytest.mark.parametrize(
    ("secret", "options", "reason"),
    [
        ("8305716294830572", {}, "about 41 bits of entropy, below 64"),
        ("Summer2024Summer", {}, "about 60 bits of entropy, below 64"),
        ("kqzmwxvprtlnbhgf", {"min_bits": 80}, "about 67 bits of entropy, below 80"),
        ("kqzmwxvprtlnbhgf", {"min_bits": 67}, ""),
        ("8305716294830572", {"min_bits": 0}, ""),
    ],
)
def test_entropy_below_min_bits(secret, options, reason):
    assert secret_weakness(secret, **options) == reason


@pytest.mark.parametrize(
    ("secret", "bits", "cheap"),
    [
        # The pool is the classes present: lowercase only is 26, letters and digits 62, all printable ASCII 95.
        ("kqzmwxvp", 8 * 4.700439718141092, 0),
        ("kQzM8xVp", 8 * 5.954196310386876, 0),
        ("kQz#8x Vp", 9 * 6.569855608330948, 0),
        ("aé", 2 * 6.977279923499917, 0),
        # Repeats and runs count one bit per character after the first.
        ("aaaa", 4.700439718141092 + 3, 3),
        ("abcd", 4.700439718141092 + 3, 3),
        ("dcba", 4.700439718141092 + 3, 3),
        ("qwer", 4.700439718141092 + 3, 3),
        ("abx", 3 * 4.700439718141092, 0),
        ("7890", 3.321928094887362 + 3, 3),
        # A chunk of three seen before counts one bit per character.
        ("kqzmkqz", 4 * 4.700439718141092 + 3, 3),
        ("kqzmKQZ", 4 * 5.700439718141092 + 3, 3),
    ],
)
def test_entropy_estimate(secret, bits, cheap):
    assert entropy_bits(secret) == (pytest.approx(bits), cheap)


def test_rules_apply_in_order():
    # Too short wins over everything; too few distinct characters over a common word.
    assert secret_weakness("changeme") == "shorter than 16 characters (got 8)"
    assert secret_weakness("celerycelerycelery") == "only 5 distinct characters"
    assert secret_weakness("1234567890123456") == "built around a common password (123456)"


# ---------------------------------------------------------------------------------------------------------------
# Generated secrets pass; reasons reveal nothing.


def test_generated_secrets_pass_with_a_big_margin():
    samples = [generated(40) for _index in range(200)]
    assert [secret_weakness(secret) for secret in samples] == [""] * len(samples)
    bits = [entropy_bits(secret)[0] for secret in samples]
    assert min(bits) > 150
    assert sum(bits) / len(bits) > 200


def test_random_sixteen_letters_and_digits_pass():
    samples = [generated(16) for _index in range(500)]
    failures = [secret for secret in samples if secret_weakness(secret)]
    assert len(failures) <= 5, [secret_weakness(secret) for secret in failures]


@pytest.mark.parametrize(
    "secret",
    [secret for secret, _reason in WEAK]
    + ["Xk9#mQ2!v", "8305716294830572", "Summer2024Summer", "Xk9#mQ2!Xk9#mQ2!Xk9#mQ2!", "RabbitMQ#2024!xy"],
)
def test_a_reason_reveals_nothing_of_the_secret(secret):
    reason = secret_weakness(secret)
    assert reason
    assert_reveals_nothing(secret, reason)


# Every reason the filter gives: fixed sentences with counts, and the public dictionary word.
REASON = re.compile(
    r"^(|not a string|shorter than \d+ characters \(got \d+\)|only \d+ distinct characters?"
    r"|built around a common password \((?P<word>[a-z0-9]+)\)"
    r"|a run or a keyboard/alphabet/digit sequence makes up most of it"
    r"|about \d+ bits of entropy, below \d+)$"
)


@pytest.mark.parametrize(
    "secret",
    # Secrets that share words with the reasons get the same fixed sentences: a reason is made of counts only.
    ["short", "only 3", "distinct characters shorter than", "bits of entropy bits", "aaaaaaaaaaaaaaaaaaaaaaaa"],
)
def test_a_reason_is_a_fixed_sentence_with_counts(secret):
    match = REASON.match(secret_weakness(secret))
    assert match
    assert match.group("word") in (None, *COMMON_WORDS)


def test_reasons_for_many_weak_secrets_reveal_nothing():
    rng = random.Random(16)  # noqa: S311 (repeatable test data, not a secret)
    pools = ["abc", "0123456789", "qwertyuiop", string.ascii_lowercase, ALNUM + "!@#$ "]
    reasons = set()
    for _index in range(500):
        pool = rng.choice(pools)
        secret = "".join(rng.choice(pool) for _position in range(rng.randint(4, 24)))
        if rng.random() < 0.3:
            secret = rng.choice(COMMON_WORDS) + secret[: len(secret) // 2]
        reason = secret_weakness(secret)
        reasons.add(reason.split(" ")[0])
        assert REASON.match(reason)
        assert_reveals_nothing(secret, reason)
    # Every kind of reason was exercised.
    assert {"shorter", "only", "built", "about", "a"} <= reasons


# ---------------------------------------------------------------------------------------------------------------
# Options and registration.


@pytest.mark.parametrize("bad", ["ten", "", 16.5, 16.0, None, [16], True])
@pytest.mark.parametrize("option", ["min_length", "min_bits"])
def test_an_option_that_is_not_an_integer_is_an_error(option, bad):
    with pytest.raises(TypeError, match=f"secret_weakness: {option} must be an integer"):
        secret_weakness("gT4kP9xQ2mW7zL5n", **{option: bad})


def test_the_filter_is_registered_under_its_name():
    assert FilterModule().filters() == {"secret_weakness": secret_weakness}
