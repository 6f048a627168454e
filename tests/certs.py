"""A throw-away certificate authority for the test servers (Dovecot, SMTP).

``make_certs(dir)`` writes ``ca.crt`` and a server certificate for 127.0.0.1 and localhost signed by
it; clients trust the CA file, as an account's ``ca_file`` would. The extensions satisfy OpenSSL's
X509_STRICT checks, which Python 3.13+ enables in ``ssl.create_default_context()``.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Certs:
    ca_file: Path
    cert_file: Path
    key_file: Path


def make_certs(directory: Path) -> Certs:
    """A self-signed CA and a server certificate (SAN IP:127.0.0.1, DNS:localhost) signed by it."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if not openssl:
        raise RuntimeError("the openssl command line tool is required for the TLS test servers")
    (d / "openssl.cnf").write_text(
        "[req]\nprompt = no\ndistinguished_name = dn\n"
        "[dn]\nO = vmailkit tests\nCN = vmailkit test CA\n"
        "[ca_ext]\nbasicConstraints = critical, CA:TRUE\nkeyUsage = critical, keyCertSign, cRLSign\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
        "[server_ext]\nbasicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\nextendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid:always\n"
    )

    def run(*args: str) -> None:
        r = subprocess.run([openssl, *args], cwd=d, capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{r.stderr}")

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    cnf = ["-config", "openssl.cnf"]
    run("req", *cnf, "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-extensions", "ca_ext")
    run("req", *cnf, "-new", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/O=vmailkit tests/CN=localhost")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
        "-out", "server.crt", "-extfile", "openssl.cnf", "-extensions", "server_ext")
    for name in ("ca.key", "server.key"):
        os.chmod(d / name, 0o600)
    return Certs(ca_file=d / "ca.crt", cert_file=d / "server.crt", key_file=d / "server.key")
