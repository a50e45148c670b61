//! Errors of the topology layer. Every problem names where it is (a node, a kind, a group, a
//! link) so the user can find the line; all problems of a file are reported at once.

use std::fmt;
use std::path::PathBuf;

/// A place in the topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Where {
    /// The top level of the file.
    Top,
    /// The `mgmt` section.
    Mgmt,
    /// `topology` itself (its own keys).
    Topology,
    /// `topology.defaults`.
    Defaults,
    /// `topology.kinds.<kind>`.
    Kind(String),
    /// `topology.groups.<group>`.
    Group(String),
    /// `topology.nodes.<node>`.
    Node(String),
    /// `topology.links[index]` (0-based), with its endpoints as written when they could be read.
    Link { index: usize, endpoints: String },
}

impl fmt::Display for Where {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Where::Top => write!(f, "top level"),
            Where::Mgmt => write!(f, "mgmt"),
            Where::Topology => write!(f, "topology"),
            Where::Defaults => write!(f, "topology.defaults"),
            Where::Kind(k) => write!(f, "kind `{k}`"),
            Where::Group(g) => write!(f, "group `{g}`"),
            Where::Node(n) => write!(f, "node `{n}`"),
            Where::Link { index, endpoints } if endpoints.is_empty() => {
                write!(f, "link #{}", index + 1)
            }
            Where::Link { index, endpoints } => write!(f, "link #{} ({endpoints})", index + 1),
        }
    }
}

/// What is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProblemKind {
    /// A key that containerlab's schema does not have.
    UnknownKey { key: String, suggestion: Option<String> },
    /// A key containerlab has but tartanlab deliberately does not run.
    UnsupportedKey { key: String, reason: &'static str },
    /// A required key is missing.
    Missing { key: &'static str },
    /// A value of the wrong YAML type.
    WrongType { key: String, expected: &'static str },
    /// A value that does not make sense.
    BadValue { key: String, message: String },
    /// A node kind tartanlab cannot deploy.
    UnsupportedKind { kind: String },
    /// A link endpoint names a node the file does not define.
    UnknownNode { node: String },
    /// A link end tartanlab refuses for safety (it would touch the machine's own namespace).
    HostTouching { what: String },
    /// An interface name the kernel or containerlab would reject.
    BadInterface { node: String, interface: String, reason: String },
    /// The same interface used by two links.
    DuplicateInterface { node: String, interface: String, first_link: usize },
    /// `${VAR}` with VAR unset and no default.
    UnsetVariable { reference: String, line: usize },
    /// A `group:` that `topology.groups` does not define.
    UnknownGroup { group: String, suggestion: Option<String> },
    /// A `topology.kinds` entry for a kind containerlab does not have.
    UnknownKind { kind: String, suggestion: Option<String> },
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProblemKind::UnknownKey { key, suggestion: Some(s) } => {
                write!(f, "unknown key `{key}` (did you mean `{s}`?)")
            }
            ProblemKind::UnknownKey { key, suggestion: None } => write!(f, "unknown key `{key}`"),
            ProblemKind::UnsupportedKey { key, reason } => {
                write!(f, "`{key}` is not supported by tartanlab: {reason}")
            }
            ProblemKind::Missing { key } => write!(f, "`{key}` is required"),
            ProblemKind::WrongType { key, expected } => write!(f, "`{key}` must be {expected}"),
            ProblemKind::BadValue { key, message } => write!(f, "`{key}`: {message}"),
            ProblemKind::UnsetVariable { reference, line } => write!(
                f,
                "{reference} on line {line} is not set and has no default: pass `--var NAME=VALUE`, \
                 export it, write a default (`${{NAME:-value}}`), or `$${{NAME}}` for the text itself"
            ),
            ProblemKind::UnknownGroup { group, suggestion } => {
                write!(f, "group `{group}` is not defined in topology.groups")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean `{s}`?)"),
                    None => Ok(()),
                }
            }
            ProblemKind::UnknownKind { kind, suggestion } => {
                write!(f, "`{kind}` is not a containerlab kind")?;
                match suggestion {
                    Some(s) => write!(f, " (did you mean `{s}`?)"),
                    None => Ok(()),
                }
            }
            ProblemKind::UnsupportedKind { kind } => write!(
                f,
                "kind `{kind}` is not supported by tartanlab (supported: linux, bridge; the image picks \
                 FRR, BIRD, GoBGP or a plain host)"
            ),
            ProblemKind::UnknownNode { node } => {
                write!(f, "endpoint refers to node `{node}`, which topology.nodes does not define")
            }
            ProblemKind::HostTouching { what } => write!(
                f,
                "{what} would place an interface in the machine's own network namespace; \
                 tartanlab never touches the host network (connect to a node instead)"
            ),
            ProblemKind::BadInterface { node, interface, reason } => {
                write!(f, "interface `{node}:{interface}` {reason}")
            }
            ProblemKind::DuplicateInterface { node, interface, first_link } => write!(
                f,
                "interface `{node}:{interface}` is already used by link #{}",
                first_link + 1
            ),
        }
    }
}

/// One problem found in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub at: Where,
    pub kind: ProblemKind,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.kind)
    }
}

/// Why a topology file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    #[error("cannot read topology file {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{}: line {line} contains a Go template (`{{{{`); tartanlab does not render templates — \
         render the file first (for example with `containerlab deploy --vars` on a machine with \
         containerlab) or write the values out",
        path.display()
    )]
    Template { path: PathBuf, line: usize },
    #[error("{}: not valid YAML: {source}", path.display())]
    Yaml { path: PathBuf, source: serde_yaml::Error },
    #[error("{}: {} problem{}:\n{}", path.display(), problems.len(),
        if problems.len() == 1 { "" } else { "s" },
        problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n"))]
    Invalid { path: PathBuf, problems: Vec<Problem> },
}

impl TopologyError {
    /// The individual problems, for an invalid file; empty for read and syntax errors.
    pub fn problems(&self) -> &[Problem] {
        match self {
            TopologyError::Invalid { problems, .. } => problems,
            _ => &[],
        }
    }
}
