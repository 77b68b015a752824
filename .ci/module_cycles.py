#!/usr/bin/env python3
"""Module import graph of a crate's src/ (code only: comments and test modules left out), and
its cycles (strongly connected components of more than one module)."""
import re, glob, sys
src_dir = sys.argv[1]
def modname(f):
    rel = f[len(src_dir):].lstrip('/')[:-3]
    if rel == 'lib': return None
    return rel.split('/')[0]
graph = {}
for f in glob.glob(src_dir + '/**/*.rs', recursive=True):
    m = modname(f)
    if m is None or f.endswith('tests.rs'): continue
    text = open(f).read()
    text = re.split(r'#\[cfg\(test\)\]\s*mod tests\s*\{', text)[0]
    code = '\n'.join(l.split('//')[0] for l in text.split('\n'))
    deps = set(re.findall(r'crate::([a-z_]+)', code))
    for grp in re.findall(r'use crate::\{([^}]*)\}', code, re.S):
        for name in re.findall(r'\b([A-Za-z_]+)\b', grp):
            deps.add('ROOT:' + name)
    graph.setdefault(m, set()).update(deps)
lib = open(src_dir + '/lib.rs').read()
root = {}
for mod_, names in re.findall(r'pub use ([a-z_]+)::\{([^}]*)\}', lib, re.S):
    for n in re.findall(r'\b([A-Za-z_]+)\b', names): root[n] = mod_
for mod_, name in re.findall(r'pub use ([a-z_]+)::([A-Za-z_]+);', lib): root[name] = mod_
for m in graph:
    graph[m] = {root.get(d[5:], d[5:]) if d.startswith('ROOT:') else d for d in graph[m]}
    graph[m] = {d for d in graph[m] if d != m and d in graph}
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
def strong(v):
    index[v] = low[v] = counter[0]; counter[0] += 1; stack.append(v); on.add(v)
    for w in graph.get(v, ()):
        if w not in index: strong(w); low[v] = min(low[v], low[w])
        elif w in on: low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        c = []
        while True:
            w = stack.pop(); on.discard(w); c.append(w)
            if w == v: break
        sccs.append(c)
for v in sorted(graph):
    if v not in index: strong(v)
cycles = [sorted(c) for c in sccs if len(c) > 1]
for m in sorted(graph): print(f"{m} -> {', '.join(sorted(graph[m]))}")
print("cycles:", cycles)
sys.exit(1 if cycles else 0)
