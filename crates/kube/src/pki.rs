//! The API server's certificates: a CA made once per data root, the serving certificate it
//! signs (for 127.0.0.1, localhost and the `kubernetes` service names), and the admin client
//! certificate (`kubernetes-admin`, group `system:masters`) the kubeconfig carries. Kept under
//! `<root>/kube/pki`, keys 0600; made again, all together, when any file is missing.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SanType,
};

/// PEM files of the cluster's identities.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The CA certificate (clients trust it; it signs client certificates).
    pub ca_cert: String,
    /// The serving certificate and key.
    pub server_cert: String,
    /// The serving key.
    pub server_key: String,
    /// The admin client certificate.
    pub admin_cert: String,
    /// The admin client key.
    pub admin_key: String,
}

/// Errors making or reading the certificates.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
}

const FILES: [&str; 6] = ["ca.crt", "ca.key", "apiserver.crt", "apiserver.key", "admin.crt", "admin.key"];

fn name(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    if let Some(o) = org {
        d.push(DnType::OrganizationName, o);
    }
    d
}

fn validity(p: &mut CertificateParams, days: i64) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let at = |t: i64| time::OffsetDateTime::from_unix_timestamp(t).expect("a time in range");
    p.not_before = at(now - 3600);
    p.not_after = at(now + days * 86400);
}

impl Pki {
    /// Load the certificates under `dir`, or make them (extra SANs: more addresses the server
    /// answers on).
    pub fn load_or_create(dir: &Path, extra_ips: &[IpAddr]) -> Result<Pki, Error> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        if FILES.iter().all(|f| dir.join(f).is_file()) {
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(io(&dir.join(f)));
            return Ok(Pki {
                ca_cert: read("ca.crt")?,
                server_cert: read("apiserver.crt")?,
                server_key: read("apiserver.key")?,
                admin_cert: read("admin.crt")?,
                admin_key: read("admin.key")?,
            });
        }
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let (pki, ca_key) = Self::generate(extra_ips)?;
        let write = |f: &str, data: &str, mode: u32| -> Result<(), Error> {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let p = dir.join(f);
            let tmp = dir.join(format!(".{f}.tmp"));
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .truncate(true)
                .write(true)
                .mode(mode)
                .open(&tmp)
                .map_err(io(&tmp))?;
            file.write_all(data.as_bytes()).and_then(|_| file.sync_all()).map_err(io(&tmp))?;
            std::fs::rename(&tmp, &p).map_err(io(&p))
        };
        write("ca.key", &ca_key, 0o600)?;
        write("apiserver.key", &pki.server_key, 0o600)?;
        write("admin.key", &pki.admin_key, 0o600)?;
        write("apiserver.crt", &pki.server_cert, 0o644)?;
        write("admin.crt", &pki.admin_cert, 0o644)?;
        write("ca.crt", &pki.ca_cert, 0o644)?;
        Ok(pki)
    }

    /// A fresh CA, serving and admin certificate; also returns the CA key.
    fn generate(extra_ips: &[IpAddr]) -> Result<(Pki, String), Error> {
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::default();
        ca.distinguished_name = name("berth-ca", None);
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        validity(&mut ca, 3650);
        let ca_pem_key = ca_key.serialize_pem();
        let issuer = CertifiedIssuer::self_signed(ca, ca_key)?;

        let server_key = KeyPair::generate()?;
        let mut sans = vec![
            "localhost".to_string(),
            "kubernetes".to_string(),
            "kubernetes.default".to_string(),
            "kubernetes.default.svc".to_string(),
            "kubernetes.default.svc.cluster.local".to_string(),
        ];
        let mut ips: Vec<IpAddr> = vec![IpAddr::from([127, 0, 0, 1])];
        ips.extend(extra_ips.iter().copied().filter(|ip| !ip.is_unspecified()));
        sans.dedup();
        let mut server = CertificateParams::new(sans)?;
        for ip in ips {
            server.subject_alt_names.push(SanType::IpAddress(ip));
        }
        server.distinguished_name = name("kube-apiserver", None);
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut server, 825);
        let server_cert = server.signed_by(&server_key, &issuer)?;

        let admin_key = KeyPair::generate()?;
        let mut admin = CertificateParams::default();
        admin.distinguished_name = name("kubernetes-admin", Some("system:masters"));
        admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        admin.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
        validity(&mut admin, 825);
        let admin_cert = admin.signed_by(&admin_key, &issuer)?;

        Ok((
            Pki {
                ca_cert: issuer.pem(),
                server_cert: server_cert.pem(),
                server_key: server_key.serialize_pem(),
                admin_cert: admin_cert.pem(),
                admin_key: admin_key.serialize_pem(),
            },
            ca_pem_key,
        ))
    }

    /// An admin kubeconfig for a server at `server` (`https://127.0.0.1:6443`), with the
    /// certificates embedded.
    pub fn kubeconfig(&self, server: &str) -> String {
        use base64::Engine;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: berth\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\nusers:\n- name: berth-admin\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\ncontexts:\n- name: berth\n  context:\n    cluster: berth\n    user: berth-admin\n    namespace: default\ncurrent-context: berth\npreferences: {{}}\n",
            b64(&self.ca_cert),
            b64(&self.admin_cert),
            b64(&self.admin_key)
        )
    }
}
