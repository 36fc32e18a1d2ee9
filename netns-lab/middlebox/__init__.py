"""The lab's middleboxes, run in a namespace between two others (see netns-lab/README.md):
the impairment box (`impair.py` over `link_model.py`) and the censor's TCP first-packet
classifier (`tcp_censor.py` over `fully_encrypted.py`). Lab code, never part of the node."""
