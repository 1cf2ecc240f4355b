//! Which handoff partition holds a workspace's files: [`dwsync_handoff::partition`], re-exported
//! (control writes cut records with it too).

pub use dwsync_handoff::partition::{handoff_partition, murmur2, partition_of};
