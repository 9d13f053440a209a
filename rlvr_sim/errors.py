"""User-facing errors: anything a user can fix by editing input ends here, never in a traceback."""


class UserError(Exception):
    """An input problem. The message names the field, the bad value and the fix."""


class ScenarioError(UserError):
    """A scenario file that does not validate, or describes a run that cannot exist."""
