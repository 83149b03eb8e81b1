//! Certificates for running the stack over TLS without a real PKI: a throwaway CA and the leaf
//! certificates `envoy.tls.yaml` names (`cargo xtask dev-certs`, and every TLS test, which makes
//! its own in a temporary directory: no private key is ever committed).
//!
//! The layout is a Kubernetes secret volume's: the files live in a versioned directory and are
//! reached through the `..data` symlink, which a rotation swaps atomically ([`rotate`]). Envoy's
//! SDS watches the directory for that move and picks up the new pair without a restart.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// The name every dev server certificate carries (the edge's listener, the authorization server,
/// the backend), and what `envoy.tls.yaml` expects of its upstreams.
pub const DEV_TLS_HOST: &str = "localhost";

/// The SDS secret of Envoy's listener certificate, and of its client certificate (to the backend).
pub const SERVER_SECRET: &str = "mcp_edge_server_cert";
pub const CLIENT_SECRET: &str = "mcp_edge_client_cert";

/// One certificate authority, able to sign leaves.
pub struct DevCa {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

/// A leaf certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

/// What a leaf is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    Server,
    Client,
}

impl DevCa {
    /// A new CA named `name` (its key lives only in memory).
    pub fn new(name: &str) -> Result<Self> {
        let mut params = CertificateParams::default();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().context("generating the CA key")?;
        let cert = params.self_signed(&key).context("self-signing the CA")?;
        let pem = cert.pem();
        Ok(Self {
            issuer: Issuer::new(params, key),
            pem,
        })
    }

    /// The CA certificate, PEM: what a peer trusts.
    pub fn cert_pem(&self) -> &str {
        &self.pem
    }

    /// A leaf for `names` (DNS names, or IP addresses written as such) with a fresh key.
    pub fn leaf(&self, common_name: &str, names: &[&str], usage: Usage) -> Result<Leaf> {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.subject_alt_names = names
            .iter()
            .map(|name| match name.parse::<std::net::IpAddr>() {
                Ok(ip) => Ok(SanType::IpAddress(ip)),
                Err(_) => Ok(SanType::DnsName((*name).try_into()?)),
            })
            .collect::<Result<_, rcgen::Error>>()
            .context("a certificate name")?;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![match usage {
            Usage::Server => ExtendedKeyUsagePurpose::ServerAuth,
            Usage::Client => ExtendedKeyUsagePurpose::ClientAuth,
        }];
        let key = KeyPair::generate().context("generating a leaf key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .context("signing a leaf")?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A directory of certificate files in a secret volume's layout: `<dir>/<file>` is a symlink to
/// `..data/<file>`, `..data` a symlink to the current version's directory.
#[derive(Debug, Clone)]
pub struct CertDir {
    pub dir: PathBuf,
}

/// The file names in a [`CertDir`].
pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

impl CertDir {
    /// Creates `dir` holding `leaf` as its first version.
    pub fn create(dir: &Path, leaf: &Leaf) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let this = Self {
            dir: dir.to_path_buf(),
        };
        this.write_version("..v1", leaf)?;
        std::os::unix::fs::symlink("..v1", dir.join("..data"))?;
        for file in [CERT_FILE, KEY_FILE] {
            std::os::unix::fs::symlink(format!("..data/{file}"), dir.join(file))?;
        }
        Ok(this)
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join(CERT_FILE)
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join(KEY_FILE)
    }

    /// Replaces the pair as Kubernetes does: a new version directory, then one atomic rename of a
    /// new `..data` symlink over the old (the move Envoy's watch reacts to).
    pub fn rotate(&self, version: u32, leaf: &Leaf) -> Result<()> {
        let name = format!("..v{version}");
        self.write_version(&name, leaf)?;
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&name, &tmp)?;
        std::fs::rename(&tmp, self.dir.join("..data")).context("swapping ..data")?;
        Ok(())
    }

    fn write_version(&self, name: &str, leaf: &Leaf) -> Result<()> {
        let version = self.dir.join(name);
        std::fs::create_dir_all(&version)?;
        std::fs::write(version.join(CERT_FILE), &leaf.cert_pem)?;
        write_private(&version.join(KEY_FILE), &leaf.key_pem)
    }
}

/// Writes a private key readable by its owner only.
pub fn write_private(path: &Path, pem: &str) -> Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    file.write_all(pem.as_bytes())?;
    Ok(())
}

/// The SDS file Envoy reads one TLS certificate from: the pair in `certs`, reloaded when that
/// directory's `..data` is swapped.
pub fn sds_certificate_yaml(secret_name: &str, certs: &Path) -> String {
    let dir = certs.display();
    format!(
        "# SDS (file-based): the {secret_name} certificate; Envoy reloads it when {dir}/..data is swapped.\n\
         resources:\n\
         - \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret\n\
         \x20 name: {secret_name}\n\
         \x20 tls_certificate:\n\
         \x20   certificate_chain: {{ filename: {dir}/{CERT_FILE} }}\n\
         \x20   private_key: {{ filename: {dir}/{KEY_FILE} }}\n\
         \x20   watched_directory: {{ path: {dir} }}\n"
    )
}

/// Everything `envoy.tls.yaml` and a TLS stack read under one directory.
#[derive(Debug, Clone)]
pub struct DevTlsFiles {
    pub root: PathBuf,
}

impl DevTlsFiles {
    /// The CA every dev certificate chains to (Envoy trusts it for its upstreams, the backend for
    /// Envoy's client certificate, clients for the listener).
    pub fn ca(&self) -> PathBuf {
        self.root.join("ca.pem")
    }
    /// Envoy's listener certificate (secret volume layout) and its SDS file.
    pub fn server(&self) -> CertDir {
        CertDir {
            dir: self.root.join("edge-server"),
        }
    }
    pub fn server_sds(&self) -> PathBuf {
        self.root.join("edge-server-sds.yaml")
    }
    /// Envoy's client certificate to the backend and its SDS file.
    pub fn client(&self) -> CertDir {
        CertDir {
            dir: self.root.join("edge-client"),
        }
    }
    pub fn client_sds(&self) -> PathBuf {
        self.root.join("edge-client-sds.yaml")
    }
    /// The authorization server's and the backend's certificates.
    pub fn authz(&self) -> CertDir {
        CertDir {
            dir: self.root.join("authz"),
        }
    }
    pub fn backend(&self) -> CertDir {
        CertDir {
            dir: self.root.join("backend"),
        }
    }

    /// Makes a CA and every certificate under `root` (which must not hold them yet); returns the
    /// CA, for leaves a test makes later (a rotation).
    pub fn create(root: &Path) -> Result<(Self, DevCa)> {
        let files = Self {
            root: root.to_path_buf(),
        };
        std::fs::create_dir_all(root)?;
        let ca = DevCa::new("mcp-edge dev CA")?;
        std::fs::write(files.ca(), ca.cert_pem())?;
        let server_names = [DEV_TLS_HOST, "127.0.0.1"];
        CertDir::create(
            &files.server().dir,
            &ca.leaf("mcp-edge", &server_names, Usage::Server)?,
        )?;
        CertDir::create(
            &files.client().dir,
            &ca.leaf("mcp-edge", &["mcp-edge"], Usage::Client)?,
        )?;
        CertDir::create(
            &files.authz().dir,
            &ca.leaf("authz", &server_names, Usage::Server)?,
        )?;
        CertDir::create(
            &files.backend().dir,
            &ca.leaf("backend", &server_names, Usage::Server)?,
        )?;
        std::fs::write(
            files.server_sds(),
            sds_certificate_yaml(SERVER_SECRET, &files.server().dir),
        )?;
        std::fs::write(
            files.client_sds(),
            sds_certificate_yaml(CLIENT_SECRET, &files.client().dir),
        )?;
        Ok((files, ca))
    }
}
