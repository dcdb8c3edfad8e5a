"""Search spaces: a declarative cell grammar (search_spaces/*.yaml) parsed into a :class:`Space`.

    suggest.py   who picks the values (random, replayed, the smallest; Optuna's trial in nas.control.suggest)
    domains.py   a choice's values, a space's choices and size, the keys each level of a space file accepts
    parser.py    a space file -> the Space's choices, every error with its file, line and key
    space.py     the Space (sample, replay, mutate, assignment, size, constraints on given costs)

No torch: the grammar never builds or counts a network (:mod:`nas.evaluate.costs` counts, the grammar checks).
"""
from nas.grammar.domains import COST_OF, Domain, Param, SpaceSize
from nas.grammar.space import Space, load_space, shipped_spaces_dir
from nas.grammar.suggest import RandomSuggest, ReplaySuggest, SmallestSuggest, Suggest

__all__ = ["Space", "load_space", "shipped_spaces_dir", "COST_OF", "Domain", "Param", "SpaceSize", "Suggest",
           "RandomSuggest", "ReplaySuggest", "SmallestSuggest"]
