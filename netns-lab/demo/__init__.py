"""The demo (`scripts/demo`, which runs `python netns-lab/demo`): each module one step on
a lab network of its own, reusing the topologies and helpers the lab tests use."""
