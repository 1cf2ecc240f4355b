//! Control and the backfill as processes on a run's own topics and archive bucket, as
//! `syncs-1000` and `backfill-live` start them.

use crate::services::{Place, Service};

/// The run's handoff topic and control's store topics.
pub(crate) struct Topics {
    /// The handoff topic (control writes its cut records there).
    pub(crate) handoff: String,
    store: [(&'static str, String); 6],
}

impl Topics {
    /// The topics of a run named `base`.
    pub(crate) fn new(base: &str) -> Self {
        let store = [
            "topic",
            "status_topic",
            "initial_sync_topic",
            "archive_purge_topic",
            "archive_purge_status_topic",
            "token_topic",
        ]
        .map(|key| (key, format!("{base}.{}", key.trim_end_matches("_topic").replace('_', "-"))));
        Self { handoff: format!("{base}.handoff"), store }
    }

    /// The `[store]` (control) / `[sync_config.store]` (backfill, uploader) keys.
    pub(crate) fn store_toml(&self) -> String {
        self.store.iter().map(|(key, topic)| format!("{key} = \"{topic}\"\n")).collect()
    }

    /// Every topic of the run.
    pub(crate) fn all(&self) -> Vec<String> {
        std::iter::once(self.handoff.clone()).chain(self.store.iter().map(|(_, t)| t.clone())).collect()
    }
}

/// What control and the backfill are started with.
pub(crate) struct Stack<'a> {
    /// The broker, S3 (the archive's), the binaries and the run's directory (configs, logs, the
    /// spill directory).
    pub(crate) at: &'a Place<'a>,
    /// The run's topics.
    pub(crate) topics: &'a Topics,
    /// The seal key control, the backfill and the uploader share.
    pub(crate) seal_key: [u8; 32],
    /// Control's admin token.
    pub(crate) admin_token: &'a str,
}

impl Stack<'_> {
    /// `DWSYNC_SEAL_KEY` for the services that open or seal secrets.
    pub(crate) fn seal_env(&self) -> [(String, String); 1] {
        [("DWSYNC_SEAL_KEY".to_owned(), hex::encode(self.seal_key))]
    }

    /// Starts `dwsync-control` with its API on `api_port` and initial syncs on.
    pub(crate) fn control(&self, api_port: u16) -> anyhow::Result<Service> {
        let store = self.topics.store_toml();
        Service::start("control", self.at.bin_dir, &self.at.dir, &self.seal_env(), |port| {
            format!(
                "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 [api]\nlisten = \"127.0.0.1:{api_port}\"\nadmin_token = \"{token}\"\nallow_insecure_endpoints = true\n\
                 {egress}[store]\n{store}[initial_sync]\nenabled = true\nhandoff_topic = \"{handoff}\"\n",
                bootstrap = self.at.bootstrap,
                egress = crate::backfill_large::egress_toml(&self.at.s3.endpoint),
                token = self.admin_token,
                handoff = self.topics.handoff,
            )
        })
    }

    /// Starts `dwsync-backfill` on the archive under `prefix` of `archive_bucket`, with `extra`
    /// environment (config overrides); spills under `<dir>/spill`.
    pub(crate) fn backfill(
        &self,
        archive_bucket: &str,
        prefix: &str,
        extra: &[(String, String)],
    ) -> anyhow::Result<Service> {
        let spill = self.at.dir.join("spill");
        std::fs::create_dir_all(&spill)?;
        let mut env = self.seal_env().to_vec();
        env.extend(extra.iter().cloned());
        let store = self.topics.store_toml();
        Service::start("backfill", self.at.bin_dir, &self.at.dir, &env, |port| {
            format!(
                "[kafka]\nbootstrap_servers = \"{bootstrap}\"\n[http]\nlisten = \"127.0.0.1:{port}\"\n\
                 {egress}[sync_config.store]\n{store}[archive]\nbucket = \"{archive_bucket}\"\nprefix = \"{prefix}\"\n\
                 endpoint = \"{endpoint}\"\nforce_path_style = true\naccess_key_id = \"{access}\"\nsecret_access_key = \"{secret}\"\n\
                 [handoff]\ntopic = \"{handoff}\"\n[backfill]\nspill_dir = \"{spill}\"\n",
                bootstrap = self.at.bootstrap,
                egress = crate::backfill_large::egress_toml(&self.at.s3.endpoint),
                endpoint = self.at.s3.endpoint,
                access = self.at.s3.access_key,
                secret = self.at.s3.secret_key,
                handoff = self.topics.handoff,
                spill = spill.display(),
            )
        })
    }
}
