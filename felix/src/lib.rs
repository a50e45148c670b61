//! `tartan-felix`: the node agent — kernel route programmer, workload endpoints, CNI handler.
//!
//! Empty until its issue starts; see `DESIGN.md` §4 (felix): a reconciler whose desired state is
//! diffed against the kernel and written in batches over netlink.
