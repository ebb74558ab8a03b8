"""Print the first ```bash block under the README heading that starts with the given text, so that CI runs
the README's commands exactly as written (a README edit changes what CI runs; a missing block fails CI)."""
import sys
from pathlib import Path

heading = sys.argv[1]
lines = Path(__file__).resolve().parent.parent.joinpath("README.md").read_text().splitlines()
start = next((i for i, l in enumerate(lines) if l.startswith("#") and l.lstrip("#").strip().startswith(heading)), None)
if start is None:
    sys.exit(f"README.md has no heading starting with {heading!r}")
i = next((j for j in range(start + 1, len(lines)) if lines[j].strip() == "```bash"), None)
if i is None or any(l.startswith("#") for l in lines[start + 1:i]):
    sys.exit(f"README.md has no ```bash block under {heading!r}")
end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
print("\n".join(lines[i + 1:end]))
