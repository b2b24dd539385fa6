# Copyright (c) celeryops.stack contributors
# GNU General Public License v3.0+ (see LICENSES/GPL-3.0-or-later.txt or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The TLS files a role may copy from the controller, and the messages for those it may not."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.celeryops.stack.plugins.filter.tls_file_problems import FilterModule, tls_file_problems

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0)


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key, password=None):
    encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def _certificate_pem(key, not_before, not_after):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "broker")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture
def pair(tmp_path):
    """A valid certificate and its key, as files."""
    key = _key()
    cert = tmp_path / "server.crt"
    cert.write_bytes(_certificate_pem(key, NOW - datetime.timedelta(days=1), NOW + datetime.timedelta(days=30)))
    key_file = tmp_path / "server.key"
    key_file.write_bytes(_key_pem(key))
    return str(cert), str(key_file)


def _files(cert, key):
    return {
        "x_cert_file": {"path": cert, "holds": "certificate"},
        "x_key_file": {"path": key, "holds": "private key", "of": "x_cert_file"},
    }


def test_good_pair_passes(pair):
    assert tls_file_problems(_files(*pair), now=NOW) == []


def test_registered_as_filter():
    assert FilterModule().filters()["tls_file_problems"] is tls_file_problems


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("", "x_cert_file is empty"),
        ("relative/server.crt", "is not an absolute path"),
        ("/nonexistent/server.crt", "cannot be read on the controller"),
    ],
)
def test_unusable_paths(pair, path, expected):
    problems = tls_file_problems(_files(path, pair[1]), now=NOW)
    assert len(problems) == 1
    assert expected in problems[0]


def test_key_given_as_certificate(pair):
    problems = tls_file_problems(_files(pair[1], pair[1]), now=NOW)
    assert problems == [f"x_cert_file ({pair[1]}) holds no PEM certificate (-----BEGIN CERTIFICATE-----)"]


def test_certificate_given_as_key(pair):
    problems = tls_file_problems(_files(pair[0], pair[0]), now=NOW)
    assert problems == [f"x_key_file ({pair[0]}) holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)"]


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [(-30, -1, "expired on 2026-05-31"), (1, 30, "not valid before 2026-06-02")],
)
def test_certificate_out_of_dates(tmp_path, pair, start, end, expected):
    key = _key()
    cert = tmp_path / "dated.crt"
    cert.write_bytes(_certificate_pem(key, NOW + datetime.timedelta(days=start), NOW + datetime.timedelta(days=end)))
    problems = tls_file_problems({"x_cert_file": {"path": str(cert), "holds": "certificate"}}, now=NOW)
    assert len(problems) == 1
    assert expected in problems[0]


def test_encrypted_key_refused(tmp_path, pair):
    key_file = tmp_path / "encrypted.key"
    key_file.write_bytes(_key_pem(_key(), password=b"a passphrase"))
    problems = tls_file_problems(_files(pair[0], str(key_file)), now=NOW)
    assert len(problems) == 1
    assert "encrypted private key" in problems[0]


def test_key_of_another_certificate_refused_without_quoting_it(tmp_path, pair):
    other = tmp_path / "other.key"
    other_pem = _key_pem(_key())
    other.write_bytes(other_pem)
    problems = tls_file_problems(_files(pair[0], str(other)), now=NOW)
    assert problems == ["x_key_file is not the private key of the certificate in x_cert_file"]
    body = b"".join(other_pem.splitlines()[1:-1]).decode()
    assert body[:20] not in " ".join(problems)


def test_garbled_pem_refused(tmp_path):
    cert = tmp_path / "garbled.crt"
    cert.write_text("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    problems = tls_file_problems({"x_cert_file": {"path": str(cert), "holds": "certificate"}}, now=NOW)
    assert problems == [f"x_cert_file ({cert}) holds a PEM certificate that cannot be parsed"]


@pytest.mark.parametrize("bad", [["a"], {"x": "/etc/x"}, {"x": {"path": "/x", "holds": "secret"}}])
def test_bad_input_raises_type_error(bad):
    with pytest.raises(TypeError):
        tls_file_problems(bad)


def test_vault_encrypted_key_accepted_unchecked(tmp_path, pair):
    key_file = tmp_path / "vaulted.key"
    key_file.write_text("$ANSIBLE_VAULT;1.1;AES256\n6162636465\n")
    assert tls_file_problems(_files(pair[0], str(key_file)), now=NOW) == []
