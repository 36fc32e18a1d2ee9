"""The lab's middleboxes (netns-lab/middlebox) are imported as the lab imports them."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "netns-lab"))
