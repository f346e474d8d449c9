"""The local cluster's PKI: one CA, a serving certificate, one client certificate per component, and the key that
signs service-account tokens. Each component has its own identity, so the audit log tells a release's requests
from the cluster's own."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

# user -> certificate CN. Every identity is in system:masters except those in OWN_RBAC, which the apiserver's
# bootstrap RBAC policy already binds (system:kube-proxy -> ClusterRole system:node-proxier), as on a real cluster.
CLIENT_CERTS = {"admin": "greenlight-admin", "kube-controller-manager": "system:kube-controller-manager",
                "kube-scheduler": "system:kube-scheduler", "kwok": "system:node:kwok", "appd": "greenlight-appd",
                "kube-proxy": "system:kube-proxy", "podipd": "greenlight-podipd"}
OWN_RBAC = {"kube-proxy"}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def subject(user: str) -> str:
    cn = CLIENT_CERTS[user]
    return f"/CN={cn}" if user in OWN_RBAC else f"/O=system:masters/CN={cn}"


def make_pki(pki: Path) -> None:
    """One CA; a serving cert for the apiserver and kwok (SAN 127.0.0.1/localhost); a client cert per component;
    an EC key that signs service-account tokens."""
    pki.mkdir(parents=True, exist_ok=True)
    ec = ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out"]
    for key in ("ca.key", "serving.key", "sa.key", *(f"{user}.key" for user in CLIENT_CERTS)):
        _openssl(*ec, key, cwd=pki)
    _openssl("ec", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    _openssl("req", "-x509", "-new", "-key", "ca.key", "-days", "3650", "-subj", "/CN=greenlight-local-ca",
             "-out", "ca.crt", cwd=pki)
    (pki / "serving.ext").write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth,clientAuth\n")
    (pki / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    certs = [("serving", "/CN=kube-apiserver", "serving.ext")]
    certs += [(user, subject(user), "client.ext") for user in CLIENT_CERTS]
    for name, subj, ext in certs:
        _openssl("req", "-new", "-key", f"{name}.key", "-subj", subj, "-out", f"{name}.csr", cwd=pki)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "3650", "-extfile", ext, "-out", f"{name}.crt", cwd=pki)


def write_kubeconfig(path: Path, pki: Path, server: str, user: str = "admin") -> None:
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "greenlight-local",
        "clusters": [{"name": "greenlight-local",
                      "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")}}],
        "users": [{"name": "greenlight-admin",
                   "user": {"client-certificate": str(pki / f"{user}.crt"), "client-key": str(pki / f"{user}.key")}}],
        "contexts": [{"name": "greenlight-local",
                      "context": {"cluster": "greenlight-local", "user": "greenlight-admin"}}],
    }, indent=2))
    path.chmod(0o600)
