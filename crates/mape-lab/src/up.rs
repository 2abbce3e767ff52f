//! Bringing a lab up: the links, then the servers, the daemons, and a warm-up through
//! the tunnel; whatever was created is torn down again if a step fails.

use std::fs;

use crate::cmd::preflight;
use crate::error::LabError;
use crate::topology::{Lab, LabOptions, LabState, NS_FAMILY};

impl Lab {
    /// Creates the namespaces and links, starts the servers and the two daemons, and waits
    /// until the CE answers on its control socket.
    pub fn up(opts: LabOptions) -> Result<Self, LabError> {
        preflight()?;
        let prefix = opts
            .prefix
            .clone()
            .unwrap_or_else(|| format!("{NS_FAMILY}{}", std::process::id()));
        let mut lab = Self::empty(prefix, opts)?;
        if let Err(e) = lab.bring_up() {
            lab.teardown();
            return Err(e);
        }
        Ok(lab)
    }

    /// A lab with nothing in it yet: its working directory, named after `prefix`.
    pub(crate) fn empty(prefix: String, opts: LabOptions) -> Result<Self, LabError> {
        let dir = std::env::temp_dir().join(format!("mape-lab-{prefix}"));
        fs::create_dir_all(&dir)?;
        Ok(Self {
            prefix,
            dir: dir.clone(),
            state: LabState {
                dir,
                ..Default::default()
            },
            children: Vec::new(),
            opts,
            daemons: Vec::new(),
        })
    }

    fn bring_up(&mut self) -> Result<(), LabError> {
        self.build_links()?;
        let (ce, isp) = (self.ns("ce"), self.ns("isp"));
        let (inet, sink) = (self.ns("inet"), self.ns("sink"));
        self.start_servers(&inet, &sink)?;
        self.start_daemons(&ce, &isp)?;
        self.warm_up()
    }
}
