"""Path choice for native peers (issue 12, "Choosing and switching"): candidates per peer
(candidate.py), their RTT and loss (estimator.py), the selector, racing and failover
(pathset.py), and every peer's set with the probes between them (manager.py)."""
