"""TLS files for tests that run a role's preflight on the controller: a CA, and a certificate and key it signed,
as PEM files in a directory, with the variables of the TLS contract (group_vars/all) that name them."""

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _name(common_name):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def tls_variables(directory):
    """Write ca.crt, host.crt and host.key into ``directory`` (once) and return celeryops_tls_* naming them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in ("ca.crt", "host.crt", "host.key")}
    if not all(path.exists() for path in files.values()):
        now = datetime.datetime.now(datetime.timezone.utc)
        ca_key = ec.generate_private_key(ec.SECP256R1())
        host_key = ec.generate_private_key(ec.SECP256R1())
        ca = (
            x509.CertificateBuilder()
            .subject_name(_name("test CA"))
            .issuer_name(_name("test CA"))
            .public_key(ca_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(ca_key, hashes.SHA256())
        )
        host = (
            x509.CertificateBuilder()
            .subject_name(_name("localhost"))
            .issuer_name(ca.subject)
            .public_key(host_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(ca_key, hashes.SHA256())
        )
        files["ca.crt"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
        files["host.crt"].write_bytes(host.public_bytes(serialization.Encoding.PEM))
        files["host.key"].write_bytes(
            host_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        files["host.key"].chmod(0o600)
    return {
        "celeryops_tls_ca_file": str(files["ca.crt"]),
        "celeryops_tls_cert_file": str(files["host.crt"]),
        "celeryops_tls_key_file": str(files["host.key"]),
    }
