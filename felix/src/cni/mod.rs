//! CNI: the plugin the runtime executes (`plugin`), the messages it exchanges with the agent
//! over a unix socket (`protocol`), the CNI spec's documents (`types`), and the workload veth
//! the agent makes (`veth`).

pub mod plugin;
pub mod protocol;
pub mod types;
pub mod veth;
