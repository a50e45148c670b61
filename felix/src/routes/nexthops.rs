//! Nexthop objects for learned routes. Thousands of routes learned from a few peers share a
//! few next hops. Written with the gateway in each route (`via 10.0.0.2`), the kernel builds
//! and checks a next hop for every route, then finds it has one already; written as an object
//! once (`ip nexthop add id N via 10.0.0.2 dev eth0`) that routes name (`nhid N`), it does
//! that work once. Writing 10,000 routes takes the kernel about 40 % less time that way
//! (docs/benchmarks.md). With the kernel's default `nexthop_compat_mode`, dumps and `ip route`
//! still show each route's gateway.
//!
//! This is the book-keeping, without I/O: which objects of ours exist and what they hold,
//! which of our routes name which, what a write needs created first, and which objects no
//! route needs any more. Objects carry our protocol number; another's are never touched and
//! their IDs never reused. An object is deleted only when no route at all names it: the
//! kernel would delete every route naming an object along with it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use ipnet::IpNet;
use tartan_bgp::hash::FoldHashMap;

use super::wire::{NexthopObject, NexthopRequest};

/// What one of our objects holds.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Shape {
    Gateway {
        gateway: IpAddr,
        oif: u32,
    },
    /// Member IDs, sorted.
    Group(Vec<u32>),
}

/// Our nexthop objects and the routes that name them, in one namespace.
#[derive(Debug)]
pub struct Nexthops {
    protocol: u8,
    objects: HashMap<u32, Shape>,
    by_shape: HashMap<Shape, u32>,
    /// Every ID in use, by anyone.
    taken: HashSet<u32>,
    next_id: u32,
    /// The object each of our routes names (one entry per learned route: a hash cheaper than
    /// SipHash keeps writing 10,000 of them under a millisecond).
    routes: FoldHashMap<IpNet, u32>,
    /// Objects named by routes that are not ours (another protocol's, another table's).
    pinned: HashSet<u32>,
    /// Objects named by routes of ours created since the dump.
    fresh: HashSet<u32>,
    /// A dump of the routes has been read, so `routes` and `pinned` are complete: only then
    /// may an object be called unused.
    known: bool,
}

impl Nexthops {
    pub fn new(protocol: u8) -> Nexthops {
        Nexthops {
            protocol,
            objects: HashMap::new(),
            by_shape: HashMap::new(),
            taken: HashSet::new(),
            next_id: first_id(protocol),
            routes: FoldHashMap::default(),
            pinned: HashSet::new(),
            fresh: HashSet::new(),
            known: false,
        }
    }

    /// The kernel's objects, every protocol's, as just dumped.
    pub fn load_objects(&mut self, all: Vec<NexthopObject>) {
        self.objects.clear();
        self.by_shape.clear();
        self.taken = all.iter().map(|o| o.id).collect();
        for o in all.into_iter().filter(|o| o.protocol == self.protocol && !o.blackhole) {
            let shape = match (o.gateway, o.group.is_empty()) {
                (Some(gateway), true) => Shape::Gateway { gateway, oif: o.oif },
                (None, false) => {
                    let mut members = o.group;
                    members.sort_unstable();
                    Shape::Group(members)
                }
                // Not a shape we write: not ours to reuse or remove.
                _ => continue,
            };
            self.by_shape.entry(shape.clone()).or_insert(o.id);
            self.objects.insert(o.id, shape);
        }
    }

    /// The objects the kernel's routes name, as just dumped: `(destination, object, ours)`.
    pub fn load_routes(&mut self, named: impl IntoIterator<Item = (IpNet, u32, bool)>) {
        self.routes.clear();
        self.pinned.clear();
        self.fresh.clear();
        for (dst, id, ours) in named {
            if ours {
                self.routes.insert(dst, id);
            } else {
                self.pinned.insert(id);
            }
        }
        self.known = true;
    }

    /// The gateways of our object `id`; `None` if it is not one of ours.
    pub fn gateways(&self, id: u32) -> Option<Vec<IpAddr>> {
        match self.objects.get(&id)? {
            Shape::Gateway { gateway, .. } => Some(vec![*gateway]),
            Shape::Group(members) => members
                .iter()
                .map(|m| match self.objects.get(m)? {
                    Shape::Gateway { gateway, .. } => Some(*gateway),
                    Shape::Group(_) => None,
                })
                .collect(),
        }
    }

    /// The gateway and interface of our object `id` (of a group, its first member's).
    pub fn first_path(&self, id: u32) -> Option<(IpAddr, u32)> {
        match self.objects.get(&id)? {
            Shape::Gateway { gateway, oif } => Some((*gateway, *oif)),
            Shape::Group(members) => match self.objects.get(members.first()?)? {
                Shape::Gateway { gateway, oif } => Some((*gateway, *oif)),
                Shape::Group(_) => None,
            },
        }
    }

    /// The object for next hops `hops` (gateway and interface index each), taken as created:
    /// what must be created for it first is appended to `create`, members before their group.
    /// Report what the kernel made of those with [`Nexthops::failed`].
    pub fn object_for(&mut self, hops: &[(IpAddr, u32)], create: &mut Vec<NexthopRequest>) -> u32 {
        let mut members: Vec<u32> = hops
            .iter()
            .map(|&(gateway, oif)| {
                let shape = Shape::Gateway { gateway, oif };
                self.ensure(shape, create, |id, protocol| NexthopRequest::Gateway {
                    id,
                    gateway,
                    oif,
                    protocol,
                })
            })
            .collect();
        if members.len() == 1 {
            return members[0];
        }
        members.sort_unstable();
        members.dedup();
        let group = members.clone();
        self.ensure(Shape::Group(group), create, move |id, protocol| NexthopRequest::Group {
            id,
            members,
            protocol,
        })
    }

    fn ensure(
        &mut self,
        shape: Shape,
        create: &mut Vec<NexthopRequest>,
        request: impl FnOnce(u32, u8) -> NexthopRequest,
    ) -> u32 {
        if let Some(id) = self.by_shape.get(&shape) {
            return *id;
        }
        let id = self.fresh_id();
        self.by_shape.insert(shape.clone(), id);
        self.objects.insert(id, shape);
        create.push(request(id, self.protocol));
        id
    }

    fn fresh_id(&mut self) -> u32 {
        while self.taken.contains(&self.next_id) || self.next_id == 0 {
            self.next_id = self.next_id.checked_add(1).unwrap_or(first_id(self.protocol));
        }
        let id = self.next_id;
        self.taken.insert(id);
        id
    }

    /// Replacements that take `gateway` out of every group of ours that has another member,
    /// with the book-keeping changed as if they were done (a failure is repaired by the next
    /// dump). Routes through such a group follow it at once, however many there are: this is
    /// how a next hop that BFD found dead leaves the kernel in one message per group. Groups
    /// with no other member are left to the routes' own rewrite.
    pub fn without_gateway(&mut self, gateway: IpAddr) -> Vec<NexthopRequest> {
        let dead: HashSet<u32> = self
            .objects
            .iter()
            .filter(|(_, s)| matches!(s, Shape::Gateway { gateway: g, .. } if *g == gateway))
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return Vec::new();
        }
        let mut changes: Vec<(u32, Vec<u32>, Vec<u32>)> = self
            .objects
            .iter()
            .filter_map(|(id, s)| match s {
                Shape::Group(members) if members.iter().any(|m| dead.contains(m)) => {
                    let rest: Vec<u32> =
                        members.iter().copied().filter(|m| !dead.contains(m)).collect();
                    (!rest.is_empty()).then(|| (*id, members.clone(), rest))
                }
                _ => None,
            })
            .collect();
        changes.sort_unstable();
        let mut out = Vec::new();
        for (id, old, rest) in changes {
            if self.by_shape.get(&Shape::Group(old.clone())) == Some(&id) {
                self.by_shape.remove(&Shape::Group(old));
            }
            self.by_shape.entry(Shape::Group(rest.clone())).or_insert(id);
            self.objects.insert(id, Shape::Group(rest.clone()));
            out.push(NexthopRequest::ReplaceGroup { id, members: rest, protocol: self.protocol });
        }
        out
    }

    /// Creating object `id` failed: it does not exist. Its ID stays taken (it may be someone
    /// else's: EEXIST).
    pub fn failed(&mut self, id: u32) {
        if let Some(shape) = self.objects.remove(&id) {
            if self.by_shape.get(&shape) == Some(&id) {
                self.by_shape.remove(&shape);
            }
        }
    }

    /// Whether object `id` is one of ours that exists (as far as we know).
    pub fn exists(&self, id: u32) -> bool {
        self.objects.contains_key(&id)
    }

    /// Our route to `dst` was written naming `object` (`None`: with its next hops inline);
    /// `created`: there was no route of ours to `dst` before.
    pub fn written(&mut self, dst: IpNet, object: Option<u32>, created: bool) {
        match (object, created) {
            // Nothing named before: only the object matters (and thousands of new routes
            // through one object cost a set lookup each, not a map entry).
            (Some(id), true) => {
                self.fresh.insert(id);
            }
            (None, true) => {}
            (Some(id), false) => {
                self.routes.insert(dst, id);
            }
            (None, false) => {
                self.routes.remove(&dst);
            }
        }
    }

    /// Our route to `dst` was deleted.
    pub fn deleted_route(&mut self, dst: IpNet) {
        self.routes.remove(&dst);
    }

    /// Deletions for our objects that no route names and no kept group holds, groups before
    /// their members. Nothing until a dump of the routes has been read.
    pub fn unused(&self) -> Vec<NexthopRequest> {
        if !self.known {
            return Vec::new();
        }
        let named: HashSet<u32> =
            self.routes.values().chain(&self.pinned).chain(&self.fresh).copied().collect();
        let mut kept = named.clone();
        for id in &named {
            if let Some(Shape::Group(members)) = self.objects.get(id) {
                kept.extend(members);
            }
        }
        let mut groups = Vec::new();
        let mut singles = Vec::new();
        for (id, shape) in &self.objects {
            if kept.contains(id) {
                continue;
            }
            match shape {
                Shape::Group(_) => groups.push(*id),
                Shape::Gateway { .. } => singles.push(*id),
            }
        }
        groups.sort_unstable();
        singles.sort_unstable();
        groups.into_iter().chain(singles).map(|id| NexthopRequest::Delete { id }).collect()
    }

    /// Object `id` was deleted.
    pub fn removed(&mut self, id: u32) {
        self.failed(id);
        self.taken.remove(&id);
    }
}

/// Where our IDs start: the protocol number in the top octet, so two agents with different
/// protocol numbers (or FRR's zebra, which counts up from 1) rarely meet.
fn first_id(protocol: u8) -> u32 {
    (u32::from(protocol) << 24).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("test address")
    }

    fn net(s: &str) -> IpNet {
        s.parse().expect("test prefix")
    }

    fn gateway(id: u32, gw: &str, oif: u32, protocol: u8) -> NexthopObject {
        NexthopObject { id, protocol, gateway: Some(ip(gw)), oif, group: vec![], blackhole: false }
    }

    fn ids(requests: &[NexthopRequest]) -> Vec<u32> {
        requests.iter().map(NexthopRequest::id).collect()
    }

    #[test]
    fn routes_through_the_same_next_hops_share_one_object_created_once() {
        let mut n = Nexthops::new(84);
        n.load_objects(vec![]);
        n.load_routes([]);
        let mut create = Vec::new();
        let a = n.object_for(&[(ip("10.0.0.2"), 3)], &mut create);
        assert_eq!(n.object_for(&[(ip("10.0.0.2"), 3)], &mut create), a);
        let ecmp = n.object_for(&[(ip("10.0.0.3"), 3), (ip("10.0.0.2"), 3)], &mut create);
        assert_eq!(n.object_for(&[(ip("10.0.0.2"), 3), (ip("10.0.0.3"), 3)], &mut create), ecmp);
        let b = ids(&create)[1];
        assert_eq!(ids(&create), vec![a, b, ecmp], "members before their group, each once");
        assert_eq!(
            create[2],
            NexthopRequest::Group { id: ecmp, members: vec![a, b], protocol: 84 }
        );
        assert_eq!(n.gateways(ecmp), Some(vec![ip("10.0.0.2"), ip("10.0.0.3")]));
        assert_eq!(n.first_path(ecmp), Some((ip("10.0.0.2"), 3)));
        assert_eq!(n.first_path(7), None);
        // The same gateway out of another interface is another object.
        assert_ne!(n.object_for(&[(ip("10.0.0.2"), 4)], &mut create), a);
    }

    #[test]
    fn ids_of_others_are_never_reused_and_their_objects_never_touched() {
        let mut n = Nexthops::new(84);
        let first = first_id(84);
        n.load_objects(vec![
            gateway(first, "10.0.0.9", 3, 186),
            gateway(first + 1, "10.0.0.2", 3, 84),
            gateway(7, "10.0.0.8", 3, 186),
        ]);
        n.load_routes([(net("10.99.0.0/24"), 7, false)]);
        let mut create = Vec::new();
        assert_eq!(n.object_for(&[(ip("10.0.0.2"), 3)], &mut create), first + 1, "ours, reused");
        assert!(create.is_empty());
        assert_eq!(n.object_for(&[(ip("10.0.0.9"), 3)], &mut create), first + 2);
        assert_eq!(n.gateways(7), None, "another protocol's object is not ours");
        // Nothing names ours now: both go; theirs are never on the list.
        assert_eq!(ids(&n.unused()), vec![first + 1, first + 2]);
    }

    #[test]
    fn an_object_goes_only_when_no_route_names_it_groups_before_members() {
        let mut n = Nexthops::new(84);
        n.load_objects(vec![]);
        let mut create = Vec::new();
        let a = n.object_for(&[(ip("10.0.0.2"), 3)], &mut create);
        let g = n.object_for(&[(ip("10.0.0.2"), 3), (ip("10.0.0.3"), 3)], &mut create);
        let b = ids(&create)[1];
        assert!(n.unused().is_empty(), "nothing goes before the routes are known");
        n.load_routes([(net("10.65.0.0/26"), g, true)]);
        assert!(n.unused().is_empty(), "the group holds both members");
        n.written(net("10.65.0.0/26"), Some(a), false);
        assert_eq!(ids(&n.unused()), vec![g, b], "the group, then the member no one needs");
        n.load_routes([(net("10.65.0.0/26"), a, false)]);
        assert_eq!(ids(&n.unused()), vec![g, b], "named by someone else's route: kept");
        n.deleted_route(net("10.65.0.0/26"));
        n.written(net("10.65.0.64/26"), None, false);
        n.written(net("10.65.0.128/26"), Some(b), true);
        assert_eq!(ids(&n.unused()), vec![g], "a new route names b, another's names a");
        n.load_routes([]);
        assert_eq!(ids(&n.unused()), vec![g, a, b]);
        for id in [g, a, b] {
            n.removed(id);
        }
        assert!(n.unused().is_empty());
        assert!(!n.exists(a));
    }

    #[test]
    fn a_dead_gateway_leaves_each_group_in_one_replacement() {
        let mut n = Nexthops::new(84);
        n.load_objects(vec![]);
        n.load_routes([]);
        let mut create = Vec::new();
        let (x, y, z) = ((ip("10.1.1.1"), 3), (ip("10.2.1.1"), 4), (ip("10.3.1.1"), 5));
        let xy = n.object_for(&[x, y], &mut create);
        let xyz = n.object_for(&[x, y, z], &mut create);
        let only_x = n.object_for(&[x], &mut create);
        let yz = n.object_for(&[y, z], &mut create);
        let (oy, oz) = (ids(&create)[1], n.object_for(&[z], &mut create));
        let replaced = n.without_gateway(ip("10.1.1.1"));
        assert_eq!(
            replaced,
            vec![
                NexthopRequest::ReplaceGroup { id: xy, members: vec![oy], protocol: 84 },
                NexthopRequest::ReplaceGroup { id: xyz, members: vec![oy, oz], protocol: 84 },
            ],
            "groups without the gateway, the gateway's own object, are left alone"
        );
        assert_eq!(n.gateways(xy), Some(vec![ip("10.2.1.1")]));
        assert_eq!(n.gateways(only_x), Some(vec![ip("10.1.1.1")]));
        // The book-keeping follows: the old shape is free, so x coming back makes a new
        // group, and {y, z} keeps its own object.
        let mut again = Vec::new();
        let back = n.object_for(&[x, y], &mut again);
        assert_ne!(back, xy);
        assert_eq!(n.object_for(&[y, z], &mut again), yz);
        assert!(n.without_gateway(ip("10.9.9.9")).is_empty());
    }

    #[test]
    fn a_failed_creation_leaves_no_object_and_its_id_unused_again() {
        let mut n = Nexthops::new(84);
        n.load_objects(vec![]);
        let mut create = Vec::new();
        let a = n.object_for(&[(ip("10.0.0.2"), 3)], &mut create);
        assert!(n.exists(a));
        n.failed(a);
        assert!(!n.exists(a));
        let mut again = Vec::new();
        let b = n.object_for(&[(ip("10.0.0.2"), 3)], &mut again);
        assert_ne!(a, b, "EEXIST may mean the ID is someone else's");
        assert_eq!(ids(&again), vec![b]);
    }

    #[test]
    fn ids_wrap_around_rather_than_overflow() {
        let mut n = Nexthops::new(255);
        n.next_id = u32::MAX;
        n.load_objects(vec![]);
        let mut create = Vec::new();
        assert_eq!(n.object_for(&[(ip("10.0.0.2"), 3)], &mut create), u32::MAX);
        assert_eq!(n.object_for(&[(ip("10.0.0.3"), 3)], &mut create), first_id(255));
        assert_eq!(Nexthops::new(0).next_id, 1);
    }
}
