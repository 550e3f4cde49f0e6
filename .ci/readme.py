"""Write README.md from nbs/index.ipynb (nbdev-readme needs quarto, which cannot be installed here).
`--check` fails when README.md is not what index.ipynb gives."""
import sys
from pathlib import Path
import nbformat

def _code(cell) -> str:
    "A code cell and its text outputs as markdown, or '' for hidden cells."
    lines = cell.source.splitlines()
    if any(l.strip() in ('#| hide', '#| export') for l in lines): return ''
    src = '\n'.join(l for l in lines if not l.startswith('#|')).strip()
    outs = [o.get('text') or o.get('data', {}).get('text/plain', '') for o in cell.get('outputs', [])]
    out = ''.join(outs).strip()
    return f"```python\n{src}\n```" + (f"\n\n```\n{out}\n```" if out else '')

def readme(nb='nbs/index.ipynb') -> str:
    "The README text for a notebook."
    cells = nbformat.read(nb, as_version=4).cells
    parts = [c.source.strip() if c.cell_type == 'markdown' else _code(c) for c in cells]
    head = '<!-- WARNING: generated from nbs/index.ipynb by `make readme`; edit the notebook. -->\n\n'
    return head + '\n\n'.join(p for p in parts if p) + '\n'

if __name__ == '__main__':
    text, path = readme(), Path('README.md')
    if '--check' in sys.argv[1:]:
        if not path.exists() or path.read_text() != text: sys.exit("README.md is out of date with nbs/index.ipynb: run `make readme`")
    else: path.write_text(text)
