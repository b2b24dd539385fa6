# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A filter that tells why an operator-supplied secret is too weak (documentation: secret_weakness.yml)."""

from __future__ import annotations

import math
import re

# Default and well-known passwords, and the words of this stack; public, so a reason may name one.
COMMON_WORDS = (
    "password",
    "passw0rd",
    "changeme",
    "secret",
    "guest",
    "admin",
    "administrator",
    "root",
    "celery",
    "rabbitmq",
    "rabbit",
    "flower",
    "supervisor",
    "monitoring",
    "qwerty",
    "azerty",
    "letmein",
    "welcome",
    "default",
    "test",
    "django",
    "123456",
    "12345678",
    "iloveyou",
    "dragon",
    "master",
    "trustno1",
)
# The letters a leetspeak character may stand for.
_LEET = {"0": "o", "1": "il", "3": "e", "4": "a", "5": "s", "@": "a", "$": "s", "7": "t"}
# Sequences a run may follow, one step at a time, forwards or backwards.
SEQUENCES = ("abcdefghijklmnopqrstuvwxyz", "0123456789", "qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890")
# The shortest run of a sequence, and the shortest repeated chunk, that count as cheap.
_MIN_RUN = 3
_MIN_CHUNK = 3
_INTEGER = re.compile(r"^[+-]?[0-9]+$")


def _integer(value, name):
    """``value`` as an int: an int or a string of digits (extra vars arrive as strings); anything else is an error."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value)
    raise TypeError(f"secret_weakness: {name} must be an integer, got {type(value).__name__}")


def _plural(count, noun):
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _matches(char, letter):
    """Whether ``char`` of the secret stands for ``letter`` of a word, case and leetspeak aside."""
    return char.lower() == letter or letter in _LEET.get(char, "")


def _word_coverage(secret, word):
    """How many characters of ``secret`` fall inside an occurrence of ``word``."""
    covered = set()
    for start in range(len(secret) - len(word) + 1):
        if all(_matches(secret[start + offset], letter) for offset, letter in enumerate(word)):
            covered.update(range(start, start + len(word)))
    return len(covered)


def _common_word(secret):
    """The common word that covers at least half of ``secret``, the one that covers most; None when there is none."""
    best, best_coverage = None, 0
    for word in COMMON_WORDS:
        if len(word) < 4:
            continue
        coverage = _word_coverage(secret, word)
        if coverage * 2 >= len(secret) and coverage > best_coverage:
            best, best_coverage = word, coverage
    return best


def _sequence_steps(previous, char):
    """The (sequence, direction) steps that lead from ``previous`` to ``char``."""
    steps = set()
    previous, char = previous.lower(), char.lower()
    for index, sequence in enumerate(SEQUENCES):
        at, to = sequence.find(previous), sequence.find(char)
        if at >= 0 and to >= 0 and abs(to - at) == 1:
            steps.add((index, to - at))
    return steps


def _cheap_positions(secret):
    """The positions of ``secret`` that add about one bit each: repeats, runs, and repeated chunks.

    A character that repeats the one before it; every character after the first of a run of at least three along
    the alphabet, the digits or a keyboard row, either way (case aside); every character of a chunk of at least
    three that already appeared earlier (case aside).
    """
    cheap = {index for index in range(1, len(secret)) if secret[index] == secret[index - 1]}
    steps = [set()] + [_sequence_steps(secret[index - 1], secret[index]) for index in range(1, len(secret))]
    for step in set().union(*steps):
        start = None
        for index in range(1, len(secret) + 1):
            if index < len(secret) and step in steps[index]:
                if start is None:
                    start = index
                continue
            # The run of this step was start-1 .. index-1: start .. index-1 continue it.
            if start is not None and index - start + 1 >= _MIN_RUN:
                cheap.update(range(start, index))
            start = None
    # Lowercase, one character for one (a few non-ASCII letters lowercase to two).
    folded = "".join(char.lower() if len(char.lower()) == 1 else char for char in secret)
    index = 1
    while index <= len(folded) - _MIN_CHUNK:
        length = 0
        while index + length < len(folded) and folded[index : index + length + 1] in folded[: index + length]:
            length += 1
        if length >= _MIN_CHUNK:
            cheap.update(range(index, index + length))
            index += length
        else:
            index += 1
    return cheap


def _pool(secret):
    """The number of characters an attacker tries per position: the sizes of the classes present."""
    pool = 0
    if any("a" <= char <= "z" for char in secret):
        pool += 26
    if any("A" <= char <= "Z" for char in secret):
        pool += 26
    if any("0" <= char <= "9" for char in secret):
        pool += 10
    if any(char.isascii() and not char.isalnum() for char in secret):
        pool += 33
    if not secret.isascii():
        pool += 100
    return pool


def entropy_bits(secret):
    """A simple estimate of the bits of entropy in ``secret``, and how many of its characters are cheap.

    A cheap character (see ``_cheap_positions``) counts one bit; any other counts log2 of the pool.
    """
    if not secret:
        return 0.0, 0
    cheap = len(_cheap_positions(secret))
    return cheap + (len(secret) - cheap) * math.log2(_pool(secret)), cheap


def secret_weakness(value, min_length=16, min_bits=64):
    """Why ``value`` is too weak a secret, as the end of "the secret is weak: ..."; "" when it is acceptable.

    The reason holds counts only, or the public common word the secret is built around: never any part of it.
    """
    min_length = _integer(min_length, "min_length")
    min_bits = _integer(min_bits, "min_bits")
    if not isinstance(value, str):
        return "not a string"
    length = len(value)
    if length < min_length:
        return f"shorter than {min_length} characters (got {length})"
    distinct = len(set(value))
    if distinct < min(10, max(6, length // 4)):
        return f"only {_plural(distinct, 'distinct character')}"
    word = _common_word(value)
    if word is not None:
        return f"built around a common password ({word})"
    bits, cheap = entropy_bits(value)
    if cheap * 2 > length:
        return "a run or a keyboard/alphabet/digit sequence makes up most of it"
    if bits < min_bits:
        return f"about {math.floor(bits)} bits of entropy, below {min_bits}"
    return ""


class FilterModule:
    """celeryops.stack filters for operator-supplied secrets."""

    def filters(self):
        return {"secret_weakness": secret_weakness}
