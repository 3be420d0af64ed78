//! Reads the workspace's sources for the structure rules of the style
//! guide: which module imports which (to find import cycles), and how long
//! each file's non-test code is. A plain scan of `use crate::`, `super::`,
//! `self::` and child-module paths: the workspace keeps to those forms, and
//! the scan is small enough to read, unlike a full Rust parser.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One crate's modules and the modules each one imports.
#[derive(Debug, Default)]
pub struct ModuleGraph {
    /// Module path (`pipeline::encode`) to the modules it uses.
    pub imports: BTreeMap<String, BTreeSet<String>>,
    /// Module path to its file.
    pub files: BTreeMap<String, PathBuf>,
}

/// The library modules of the crate whose sources are in `src` (its
/// `lib.rs` and everything under it; binaries are left out).
pub fn module_graph(src: &Path) -> ModuleGraph {
    let mut graph = ModuleGraph::default();
    collect_files(src, src, &mut graph.files);
    let modules: BTreeSet<String> = graph.files.keys().cloned().collect();
    for (module, file) in &graph.files {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        let code = code_without_tests_or_comments(&text);
        let prefix = if module == "crate" {
            String::new()
        } else {
            format!("{module}::")
        };
        let children: BTreeSet<&str> = modules
            .iter()
            .filter_map(|m| m.strip_prefix(&prefix))
            .filter(|rest| !rest.is_empty() && !rest.contains("::") && *rest != "crate")
            .collect();
        let mut used = BTreeSet::new();
        for path in referenced_paths(&code, module, &children) {
            // Paths through the crate root's re-exports are not followed:
            // the root only gathers, it does no work of its own.
            if let Some(target) = longest_module_prefix(&path, &modules)
                && target != *module
                && target != "crate"
            {
                used.insert(target);
            }
        }
        graph.imports.insert(module.clone(), used);
    }
    graph
}

/// The import cycles: every group of two or more modules that reach each
/// other through imports (Tarjan's strongly connected components).
pub fn import_cycles(graph: &ModuleGraph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g ModuleGraph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        cycles: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, module: &'g str) {
            self.index.insert(module, self.next);
            self.low.insert(module, self.next);
            self.next += 1;
            self.stack.push(module);
            self.on_stack.insert(module);
            for target in self.graph.imports.get(module).into_iter().flatten() {
                let target = target.as_str();
                if !self.graph.imports.contains_key(target) {
                    continue;
                }
                if !self.index.contains_key(target) {
                    self.visit(target);
                    let low = self.low[module].min(self.low[target]);
                    self.low.insert(module, low);
                } else if self.on_stack.contains(target) {
                    let low = self.low[module].min(self.index[target]);
                    self.low.insert(module, low);
                }
            }
            if self.low[module] == self.index[module] {
                let mut component = Vec::new();
                while let Some(top) = self.stack.pop() {
                    self.on_stack.remove(top);
                    component.push(top.to_owned());
                    if top == module {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.cycles.push(component);
                }
            }
        }
    }
    let mut tarjan = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        cycles: Vec::new(),
    };
    for module in graph.imports.keys() {
        if !tarjan.index.contains_key(module.as_str()) {
            tarjan.visit(module);
        }
    }
    tarjan.cycles
}

/// The lines of a file before its unit tests (`#[cfg(test)]`).
pub fn code_lines(text: &str) -> usize {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .count()
}

fn collect_files(src: &Path, dir: &Path, files: &mut BTreeMap<String, PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        let relative = path.strip_prefix(src).unwrap_or(&path);
        if path.is_dir() {
            if relative != Path::new("bin") {
                collect_files(src, &path, files);
            }
            continue;
        }
        if path.extension().is_none_or(|e| e != "rs") || relative == Path::new("main.rs") {
            continue;
        }
        let mut segments: Vec<String> = relative
            .with_extension("")
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        if segments.last().is_some_and(|s| s == "mod") {
            segments.pop();
        }
        let module = if segments == ["lib"] {
            "crate".to_owned()
        } else {
            segments.join("::")
        };
        files.insert(module, path);
    }
}

/// The text without unit tests, comments and string literals' contents.
fn code_without_tests_or_comments(text: &str) -> String {
    text.lines()
        .take_while(|line| line.trim() != "#[cfg(test)]")
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path the code names through `crate::`, `super::`, `self::` or a
/// child module's name, as absolute module paths (braced `use` groups
/// expanded).
fn referenced_paths(code: &str, module: &str, children: &BTreeSet<&str>) -> Vec<Vec<String>> {
    let own: Vec<String> = if module == "crate" {
        Vec::new()
    } else {
        module.split("::").map(str::to_owned).collect()
    };
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while at < code.len() {
        let rest = &code[at..];
        let starts_word = at == 0 || !is_ident(bytes[at - 1]) && bytes[at - 1] != b':';
        if !starts_word {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        }
        let (base, skip): (Vec<String>, usize) = if rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if rest.starts_with("self::") {
            (own.clone(), "self::".len())
        } else if rest.starts_with("super::") {
            let mut base = own.clone();
            let mut skip = 0;
            while code[at + skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else if let Some(child) = children
            .iter()
            .find(|child| rest.starts_with(&format!("{child}::")))
        {
            let mut base = own.clone();
            base.push((*child).to_owned());
            (base, child.len() + "::".len())
        } else {
            at += rest.chars().next().map_or(1, char::len_utf8);
            continue;
        };
        let (tree, used) = use_tree(&code[at + skip..]);
        for path in tree {
            let mut full = base.clone();
            full.extend(path);
            paths.push(full);
        }
        at += skip + used.max(1);
    }
    paths
}

/// Parses a path tail (`a::b::C`, `a::{b, c::D}`) into its paths, and
/// says how many bytes it took.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let bytes = text.as_bytes();
    let mut at = 0;
    let mut prefix = Vec::new();
    loop {
        if bytes.get(at) == Some(&b'{') {
            let mut paths = Vec::new();
            at += 1;
            loop {
                while bytes
                    .get(at)
                    .is_some_and(|b| b.is_ascii_whitespace() || *b == b',')
                {
                    at += 1;
                }
                if bytes.get(at).is_none_or(|b| *b == b'}') {
                    at += 1;
                    break;
                }
                let (inner, used) = use_tree(&text[at..]);
                for path in inner {
                    let mut full = prefix.clone();
                    full.extend(path);
                    paths.push(full);
                }
                at += used.max(1);
            }
            return (paths, at);
        }
        let start = at;
        while bytes.get(at).copied().is_some_and(is_ident) {
            at += 1;
        }
        if start == at {
            return (vec![prefix], at);
        }
        prefix.push(text[start..at].to_owned());
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

fn is_ident(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_'
}

fn longest_module_prefix(path: &[String], modules: &BTreeSet<String>) -> Option<String> {
    (1..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|candidate| modules.contains(candidate))
}
