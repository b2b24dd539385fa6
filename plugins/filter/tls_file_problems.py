# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Why the TLS files a role copies from the controller cannot serve (documentation: tls_file_problems.yml)."""

from __future__ import annotations

import datetime

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
except ImportError:  # pragma: no cover - ansible-core depends on cryptography; the marker checks still run
    x509 = None
    serialization = None

_KINDS = ("certificate", "private key")


def _read(path):
    """The file's bytes, or the reason it cannot be read."""
    if not isinstance(path, str) or not path:
        return None, "is empty: give the path of a PEM file on the controller"
    if not path.startswith("/"):
        return None, f"({path}) is not an absolute path"
    try:
        with open(path, "rb") as handle:
            return handle.read(), ""
    except OSError as error:
        return None, f"({path}) cannot be read on the controller: {error.strerror or error}"


def certificate_problem(data, now):
    """The reason PEM ``data`` holds no certificate valid at ``now`` (naive UTC), or ""."""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return "holds no PEM certificate (-----BEGIN CERTIFICATE-----)", None
    if x509 is None:
        return "", None
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        return "holds a PEM certificate that cannot be parsed", None
    first = certificates[0]
    not_before = first.not_valid_before_utc.replace(tzinfo=None)
    not_after = first.not_valid_after_utc.replace(tzinfo=None)
    if now < not_before:
        return f"holds a certificate not valid before {not_before:%Y-%m-%d %H:%M} UTC", first
    if now > not_after:
        return f"holds a certificate that expired on {not_after:%Y-%m-%d %H:%M} UTC", first
    return "", first


def key_problem(data):
    """The reason PEM ``data`` holds no unencrypted private key, or ""; never quotes the key."""
    if b"ENCRYPTED PRIVATE KEY-----" in data or b"Proc-Type: 4,ENCRYPTED" in data:
        return "holds an encrypted private key: the service cannot read it without its passphrase", None
    if b"PRIVATE KEY-----" not in data:
        return "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)", None
    if serialization is None:
        return "", None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return "holds a PEM private key that cannot be parsed", None
    return "", key


def _public_bytes(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def tls_file_problems(files, now=None):
    """Problems of a mapping ``{variable name: {"path": ..., "holds": "certificate" | "private key", "of": name}}``:
    one message per unusable file, naming its variable. ``of`` names the certificate variable a key must match.
    Empty when every file can serve.
    """
    if not isinstance(files, dict):
        raise TypeError(f"tls_file_problems expects a mapping of variable names to files, got {type(files).__name__}")
    now = now or datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    problems = []
    certificates = {}
    keys = {}
    for variable, entry in files.items():
        if not isinstance(entry, dict) or entry.get("holds") not in _KINDS:
            raise TypeError(f"tls_file_problems: {variable} needs 'path' and 'holds' (one of {', '.join(_KINDS)})")
        data, why = _read(entry.get("path"))
        if why:
            problems.append(f"{variable} {why}")
            continue
        if data.startswith(b"$ANSIBLE_VAULT;"):
            # Decrypted by the file lookup that copies it; its content cannot be checked here.
            continue
        if entry["holds"] == "certificate":
            why, parsed = certificate_problem(data, now)
            certificates[variable] = parsed
        else:
            why, parsed = key_problem(data)
            keys[variable] = (parsed, entry.get("of"))
        if why:
            problems.append(f"{variable} ({entry['path']}) {why}")
    for variable, (key, of) in keys.items():
        certificate = certificates.get(of)
        if key is None or certificate is None:
            continue
        if _public_bytes(key.public_key()) != _public_bytes(certificate.public_key()):
            problems.append(f"{variable} is not the private key of the certificate in {of}")
    return problems


class FilterModule:
    """celeryops.stack filters that check the TLS files a role deploys."""

    def filters(self):
        return {"tls_file_problems": tls_file_problems}
