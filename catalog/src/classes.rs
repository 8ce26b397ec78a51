//! Policy classes: principals to whom the same set of policies applies share
//! one class. Config principals' classes are built at compile time; a JWT
//! caller's team set is known only when it signs in, so its class is looked
//! up by the set of applicable policies and built on first use, once per
//! snapshot. After that, the per-request cost is one hash lookup.

use std::collections::HashMap;
use std::sync::{OnceLock, RwLock};

use crate::model::{Policy, Server};
use crate::snapshot::{ClassId, PolicyClass};

/// Most classes built on demand per snapshot (distinct policy sets of JWT
/// callers not shared with a config principal).
pub const MAX_DYNAMIC_CLASSES: usize = 8192;

/// The classes of a snapshot, by [`ClassId`]: compiled ones first, then
/// those built on demand (append-only, so references stay valid).
#[derive(Debug)]
pub(crate) struct ClassTable {
    compiled: Vec<PolicyClass>,
    /// Sorted policy indices → class.
    by_set: RwLock<HashMap<Box<[u32]>, ClassId>>,
    dynamic: OnceLock<Box<[OnceLock<PolicyClass>]>>,
    /// What classes are built from; `None` when no caller can need a new one.
    source: Option<ClassSource>,
}

/// The policies and routable servers of the snapshot, kept to build classes.
#[derive(Debug)]
pub(crate) struct ClassSource {
    pub(crate) policies: Vec<Policy>,
    pub(crate) servers: Vec<Server>,
}

impl ClassTable {
    /// The compiled classes, with the policy set of each.
    pub(crate) fn new(
        compiled: Vec<PolicyClass>,
        sets: HashMap<Box<[u32]>, ClassId>,
        source: Option<ClassSource>,
    ) -> Self {
        ClassTable {
            compiled,
            by_set: RwLock::new(sets),
            dynamic: OnceLock::new(),
            source,
        }
    }

    /// A class by id.
    pub(crate) fn get(&self, id: ClassId) -> &PolicyClass {
        let i = id as usize;
        match i.checked_sub(self.compiled.len()) {
            None => &self.compiled[i],
            Some(d) => self
                .dynamic
                .get()
                .and_then(|slots| slots[d].get())
                .expect("dynamic class ids are handed out after the class is stored"),
        }
    }

    /// Number of classes (compiled and built so far).
    pub(crate) fn len(&self) -> usize {
        self.by_set.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The class of callers to whom exactly the policies `set` (sorted
    /// indices) apply; built and remembered on first use. `None` past
    /// [`MAX_DYNAMIC_CLASSES`] or when the snapshot keeps no class source.
    pub(crate) fn for_policies(&self, set: &[u32]) -> Option<ClassId> {
        if let Some(&id) = self
            .by_set
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(set)
        {
            return Some(id);
        }
        let source = self.source.as_ref()?;
        let mut by_set = self.by_set.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = by_set.get(set) {
            return Some(id);
        }
        let d = by_set.len().checked_sub(self.compiled.len())?;
        if d >= MAX_DYNAMIC_CLASSES {
            return None;
        }
        let slots = self.dynamic.get_or_init(|| {
            (0..MAX_DYNAMIC_CLASSES)
                .map(|_| OnceLock::new())
                .collect::<Vec<_>>()
                .into_boxed_slice()
        });
        let policies: Vec<(usize, &Policy)> = set
            .iter()
            .map(|&i| (i as usize, &source.policies[i as usize]))
            .collect();
        let servers: Vec<&Server> = source.servers.iter().collect();
        let class = crate::compile::build_class(&policies, &servers, &mut HashMap::new());
        // Stored before its id is handed out (under the write lock).
        let _ = slots[d].set(class);
        let id = (self.compiled.len() + d) as ClassId;
        by_set.insert(set.into(), id);
        Some(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::load;

    fn catalog() -> crate::Catalog {
        let yaml = r#"
teams: [{name: eng}, {name: support}, {name: ops}]
servers:
  - {name: demo, owner: eng, status: approved, endpoint: "http://127.0.0.1:9/mcp",
     tools: [{name: search_issues}, {name: create_issue}, {name: delete_issue}]}
principals:
  - {name: alice, kind: user, teams: [eng]}
policies:
  - name: eng
    subjects: {teams: [eng]}
    allow: [{server: demo}]
    deny: [{server: demo, tools: ["delete_*"]}]
  - name: support
    subjects: {teams: [support]}
    allow: [{server: demo, tools: ["search_*"]}]
  - name: ops
    subjects: {teams: [ops]}
    allow: [{server: demo, tools: ["delete_*"]}]
"#;
        load(&[("c.yaml".to_string(), yaml.to_string())]).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The compiled classes of the catalog, able to build more.
    fn table() -> ClassTable {
        let c = catalog();
        let mut snap = crate::compile(&c, 1, &|_: &str| Err("none".to_string())).unwrap();
        snap.classes.source = Some(ClassSource {
            policies: c.policies.iter().map(|l| l.item.clone()).collect(),
            servers: c.servers.iter().map(|l| l.item.clone()).collect(),
        });
        snap.classes
    }

    fn allows(t: &ClassTable, id: ClassId, tool: &str) -> bool {
        match &*t.get(id).grants[0] {
            crate::Grant::None => false,
            crate::Grant::Tools(r) => r.allows(tool),
        }
    }

    #[test]
    fn a_known_set_reuses_the_compiled_class() {
        let t = table();
        assert_eq!(t.len(), 1);
        // alice's set: the eng policy (index 0).
        assert_eq!(t.for_policies(&[0]), Some(0));
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn new_sets_get_one_class_each_built_once() {
        let t = table();
        let support = t.for_policies(&[1]).unwrap();
        let eng_ops = t.for_policies(&[0, 2]).unwrap();
        let none = t.for_policies(&[]).unwrap();
        assert_eq!(t.len(), 4);
        assert_eq!(t.for_policies(&[1]), Some(support));
        assert_eq!(t.for_policies(&[0, 2]), Some(eng_ops));
        assert_eq!(t.len(), 4);

        assert!(allows(&t, support, "search_issues"));
        assert!(!allows(&t, support, "create_issue"));
        // Deny wins across the policies of a set.
        assert!(allows(&t, eng_ops, "create_issue"));
        assert!(!allows(&t, eng_ops, "delete_issue"));
        assert!(!allows(&t, none, "search_issues"));
    }

    #[test]
    fn without_a_source_only_compiled_sets_resolve() {
        let c = catalog();
        let snap = crate::compile(&c, 1, &|_: &str| Err("none".to_string())).unwrap();
        assert!(snap.classes.source.is_none());
        assert_eq!(snap.classes.for_policies(&[0]), Some(0));
        assert_eq!(snap.classes.for_policies(&[1]), None);
    }

    #[test]
    fn concurrent_first_uses_agree() {
        let t = table();
        let t = std::sync::Arc::new(t);
        let ids: Vec<ClassId> = (0..8)
            .map(|_| {
                let t = t.clone();
                std::thread::spawn(move || t.for_policies(&[1, 2]).unwrap())
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|h| h.join().unwrap())
            .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]));
        assert_eq!(t.len(), 2);
    }
}
