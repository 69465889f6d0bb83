"""The local cluster's PKI: what the components rely on when they check each other."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ferry_local.pki import (
    CLIENTS,
    FRONT_PROXY_CA,
    FRONT_PROXY_CLIENT,
    KUBERNETES_SERVICE_IP,
    ensure_credentials,
)


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def test_serving_certificate_is_signed_by_the_ca_for_every_name_clients_use(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path)
    ca, serving = load(creds.ca), load(creds.cert("apiserver"))
    assert signed_by(serving, ca)
    names = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "kubernetes.default.svc" in names.get_values_for_type(x509.DNSName)
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert ipaddress.ip_address(KUBERNETES_SERVICE_IP) in names.get_values_for_type(x509.IPAddress)
    usage = serving.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage


def test_client_certificates_carry_the_identity_rbac_sees(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path)
    ca = load(creds.ca)
    for name, (common_name, organisation) in CLIENTS.items():
        cert = load(creds.cert(name))
        assert signed_by(cert, ca)
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == common_name
        orgs = [a.value for a in cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
        assert orgs == ([organisation] if organisation else [])


def test_the_front_proxy_has_a_ca_of_its_own(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path)
    proxy = load(creds.cert(FRONT_PROXY_CLIENT))
    assert signed_by(proxy, load(creds.cert(FRONT_PROXY_CA)))
    assert not signed_by(proxy, load(creds.ca))


def test_a_second_start_keeps_every_file(tmp_path: Path) -> None:
    ensure_credentials(tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    ensure_credentials(tmp_path)
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert before == after


def test_private_keys_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    creds = ensure_credentials(tmp_path)
    for key in tmp_path.glob("*.key"):
        assert key.stat().st_mode & 0o077 == 0, key
    assert creds.service_account_pub.exists()


def test_a_serving_certificate_without_a_new_address_is_issued_anew_by_the_same_ca(
    tmp_path: Path,
) -> None:
    first = ensure_credentials(tmp_path / "pki")
    ca = first.ca.read_bytes()
    admin = first.cert("admin").read_bytes()
    again = ensure_credentials(tmp_path / "pki", ["10.200.255.253"])
    cert = x509.load_pem_x509_certificate(again.cert("apiserver").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("10.200.255.253") in names.get_values_for_type(x509.IPAddress)
    assert again.ca.read_bytes() == ca
    assert again.cert("admin").read_bytes() == admin
    served = again.cert("apiserver").read_bytes()
    ensure_credentials(tmp_path / "pki", ["10.200.255.253"])
    assert again.cert("apiserver").read_bytes() == served
