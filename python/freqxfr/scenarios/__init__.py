"""Scenario analyses built on the explanations: cross-resolution face recognition
(:mod:`.crossres`, with the degradations in :mod:`.resolution`) and morphing attacks
(:mod:`.morph`)."""
