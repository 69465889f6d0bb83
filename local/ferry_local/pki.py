"""Certificates and keys of a local cluster, generated once at its first start.

One CA signs the API server's serving certificate and the client certificates; the service
account tokens are signed by a key of their own, as in a kubeadm cluster.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SERVICE_CIDR = "10.96.0.0/16"
# The first address of the service range is the `kubernetes` Service's ClusterIP.
KUBERNETES_SERVICE_IP = "10.96.0.1"
VALIDITY = datetime.timedelta(days=3650)

SERVING_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
SERVING_IPS = ("127.0.0.1", KUBERNETES_SERVICE_IP)


@dataclass(frozen=True)
class Credentials:
    """The files of a cluster's PKI folder."""

    directory: Path

    def cert(self, name: str) -> Path:
        return self.directory / f"{name}.crt"

    def key(self, name: str) -> Path:
        return self.directory / f"{name}.key"

    @property
    def ca(self) -> Path:
        return self.cert("ca")

    @property
    def service_account_key(self) -> Path:
        return self.key("service-account")

    @property
    def service_account_pub(self) -> Path:
        return self.directory / "service-account.pub"


# name -> (common name, organisation) of each client certificate
CLIENTS: dict[str, tuple[str, str | None]] = {
    "admin": ("ferry-admin", "system:masters"),
    "kube-controller-manager": ("system:kube-controller-manager", None),
    "kube-scheduler": ("system:kube-scheduler", None),
    "kwok": ("ferry-kwok", "system:masters"),
    # Bound to the system:node-proxier role by the API server's default policy.
    "kube-proxy": ("system:kube-proxy", None),
    # Bound by ferry_local.dns to what CoreDNS's kubernetes plugin reads.
    "coredns": ("system:coredns", None),
    # Bound by ferry_local.gateway to what Envoy Gateway's controller reads and writes.
    "envoy-gateway": ("system:envoy-gateway", None),
}

FRONT_PROXY_CA = "front-proxy-ca"
FRONT_PROXY_CLIENT = "front-proxy-client"


def ensure_credentials(directory: Path, serving_ips: Sequence[str] = ()) -> Credentials:
    """Create what is missing; existing files are kept, so kubeconfigs stay valid across runs.

    `serving_ips`: addresses besides 127.0.0.1 the API server is reached at (the host's end of
    the cluster network's link, which may change from one `up` to the next): a serving
    certificate that lacks one is issued anew by the same CA, so no client notices."""
    creds = Credentials(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    ca_cert, ca_key = _ensure_ca(creds, "ca", "ferry-local-ca")
    ips = (*SERVING_IPS, *serving_ips)
    if not creds.cert("apiserver").exists() or not _serves(creds.cert("apiserver"), ips):
        key = _new_key()
        _write_pair(creds, "apiserver", _serving_certificate(key, ca_cert, ca_key, ips), key)
    for name, (common_name, organisation) in CLIENTS.items():
        if not creds.cert(name).exists():
            key = _new_key()
            cert = _client_certificate(key, common_name, organisation, ca_cert, ca_key)
            _write_pair(creds, name, cert, key)
    # Aggregated API servers trust requests the API server proxies to them through a CA of its
    # own, so a client certificate from the main CA can never pose as the proxy.
    proxy_ca_cert, proxy_ca_key = _ensure_ca(creds, FRONT_PROXY_CA, "ferry-local-front-proxy-ca")
    if not creds.cert(FRONT_PROXY_CLIENT).exists():
        key = _new_key()
        cert = _client_certificate(key, FRONT_PROXY_CLIENT, None, proxy_ca_cert, proxy_ca_key)
        _write_pair(creds, FRONT_PROXY_CLIENT, cert, key)
    if not creds.service_account_key.exists():
        key = _new_key()
        _write_private(creds.service_account_key, key)
        creds.service_account_pub.write_bytes(
            key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    return creds


def _ensure_ca(
    creds: Credentials, name: str, common_name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    if not creds.cert(name).exists():
        key = _new_key()
        _write_pair(creds, name, _ca_certificate(key, common_name), key)
    return _load_pair(creds, name)


def _new_key() -> ec.EllipticCurvePrivateKey:
    # P-256: accepted by every component, and far faster to generate than RSA.
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organisation: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
    )


def _ca_certificate(key: ec.EllipticCurvePrivateKey, common_name: str) -> x509.Certificate:
    name = _name(common_name)
    return (
        _builder(name, name, key)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )


def _leaf(
    builder: x509.CertificateBuilder,
    usage: x509.ObjectIdentifier,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    return (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=False,
                key_cert_sign=False,
                crl_sign=False,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )


def _serves(path: Path, ips: Sequence[str]) -> bool:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    held = {str(address) for address in names.get_values_for_type(x509.IPAddress)}
    return set(ips) <= held


def _serving_certificate(
    key: ec.EllipticCurvePrivateKey,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    ips: Sequence[str],
) -> x509.Certificate:
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in SERVING_NAMES]
    names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
    builder = _builder(_name("kube-apiserver"), ca_cert.subject, key).add_extension(
        x509.SubjectAlternativeName(names), critical=False
    )
    return _leaf(builder, ExtendedKeyUsageOID.SERVER_AUTH, ca_cert, ca_key)


def _client_certificate(
    key: ec.EllipticCurvePrivateKey,
    common_name: str,
    organisation: str | None,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
) -> x509.Certificate:
    builder = _builder(_name(common_name, organisation), ca_cert.subject, key)
    return _leaf(builder, ExtendedKeyUsageOID.CLIENT_AUTH, ca_cert, ca_key)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.touch(mode=0o600, exist_ok=True)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _write_pair(
    creds: Credentials, name: str, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey
) -> None:
    _write_private(creds.key(name), key)
    creds.cert(name).write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _load_pair(
    creds: Credentials, name: str
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert = x509.load_pem_x509_certificate(creds.cert(name).read_bytes())
    key = serialization.load_pem_private_key(creds.key(name).read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise TypeError(f"{creds.key(name)} is not an EC key; delete {creds.directory} to renew")
    return cert, key
