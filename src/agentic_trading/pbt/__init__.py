"""Population-based training of SB3 agents, driven by Ray Tune's PopulationBasedTraining: every
member live, tracked, its lineage and hyperparameter schedule kept, the winner replayable."""

from agentic_trading.pbt.runner import MemberRecord, PbtOutcome, read_members, run_pbt
from agentic_trading.pbt.schedule import ScheduleCallback, Segment, apply_params
from agentic_trading.pbt.spec import MUTABLE, PbtError, PbtSpec, load_spec, save_spec

__all__ = [
    "MUTABLE",
    "MemberRecord",
    "PbtError",
    "PbtOutcome",
    "PbtSpec",
    "ScheduleCallback",
    "Segment",
    "apply_params",
    "load_spec",
    "read_members",
    "run_pbt",
    "save_spec",
]
