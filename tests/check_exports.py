#!/usr/bin/env python3
"""check_exports.py NM CC LIBGPTQ HEADER... : libgptq exports exactly the
functions its installed headers declare (gptq.h; gptq/backend.h's
gptq_cpu_backend_iface), every one named gptq_*.

Fails (exit 1, naming them) on an exported symbol that is not gptq_*, on an
exported gptq_* symbol that no header declares (an internal function made ABI
by accident), and on a declared function the library does not export. The
headers are run through the C preprocessor first, so macros and comments do
not count; a function declaration is a gptq_* name followed by '(' (a
callback member or function-pointer typedef is `(*name)(`, not matched).
"""
import os
import re
import subprocess
import sys


def main():
    nm, cc, lib, *headers = sys.argv[1:]
    out = subprocess.run([nm, "-D", "--defined-only", lib], capture_output=True, text=True,
                         check=True).stdout
    exported = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3:
            exported.add(parts[2].split("@")[0])
    src = "".join(f'#include "{h}"\n' for h in headers)
    incs = sorted({"-I" + os.path.dirname(os.path.abspath(h)) for h in headers})
    r = subprocess.run([cc, "-E", "-P", *incs, "-x", "c", "-"], input=src, capture_output=True,
                       text=True)
    if r.returncode != 0:
        sys.exit(f"the preprocessor failed on {headers}:\n{r.stderr}")
    pre = r.stdout
    declared = set(re.findall(r"\b(gptq_\w+)\s*\(", pre))
    bad = sorted(s for s in exported if not s.startswith("gptq_"))
    extra = sorted(s for s in exported if s.startswith("gptq_") and s not in declared)
    missing = sorted(declared - exported)
    print(f"{lib}: {len(exported)} exported symbols, {len(declared)} functions declared in "
          f"{', '.join(headers)}")
    ok = True
    if bad:
        ok = False
        print(f"exported without the gptq_ prefix ({len(bad)}): {' '.join(bad)}")
    if extra:
        ok = False
        print(f"exported gptq_* not declared in the headers ({len(extra)}): {' '.join(extra)}")
    if missing:
        ok = False
        print(f"declared but not exported ({len(missing)}): {' '.join(missing)}")
    if not declared:
        ok = False
        print("no function declarations found: is the header list right?")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
