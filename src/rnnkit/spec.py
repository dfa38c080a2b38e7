"""Everything that builds a recurrent stack, in one place: ``RNNSpec``.

Every task builds its RNNs from one spec, so every cell and every cell option
reaches every task: the spec adds its options to a parser (``--cell``,
``--cell-option``, ``--hidden``, ``--layers``, ``--bidirectional``,
``--dropout``, ``--dilations``, ``--layer-norm``, ``--zoneout``,
``--recurrent-dropout``, ``--transition-depth``), reads them back, writes
itself into a run's config.json (as flat keys, the form runs have always
had) and is read from it again.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from .cells import SHARED_OPTIONS, check_cell_options, resolve
from .recurrent import RNN

#: the config.json keys of a spec, and their defaults for runs written before a key existed
_FIELDS = (
    "cell",
    "hidden",
    "layers",
    "bidirectional",
    "dropout",
    "dilations",
    *SHARED_OPTIONS,
    "cell_options",
)


@dataclass(frozen=True)
class RNNSpec:
    """A recurrent stack: the cell (a registered name or ``package.module:Class``), its size,
    its shared options (``rnnkit.cells.SHARED_OPTIONS``) and its own (``cell_options``).

    Example::

        spec = RNNSpec("gru", hidden=64, layers=2, zoneout=0.1)
        rnn = spec.build(input_size=8)          # an rnnkit.RNN
        assert RNNSpec.from_config(spec.to_config()) == spec
    """

    cell: str = "lstm"
    hidden: int = 256
    layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.0
    dilations: tuple[int, ...] | None = None
    layer_norm: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0
    transition_depth: int = 1
    cell_options: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.dilations is not None:
            object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
            if len(self.dilations) != self.layers:
                raise ValueError(
                    f"--dilations gives {len(self.dilations)} values for {self.layers} layers"
                )

    # -- building ---------------------------------------------------------------
    def build(self, input_size: int, *, bidirectional: bool | None = None, **extra) -> RNN:
        """The RNN this spec describes; ``bidirectional`` overrides the spec's (a decoder's is not)."""
        shared = {name: getattr(self, name) for name in SHARED_OPTIONS}
        return RNN(
            resolve(self.cell),
            input_size,
            self.hidden,
            num_layers=self.layers,
            bidirectional=self.bidirectional if bidirectional is None else bidirectional,
            dropout=self.dropout,
            dilations=list(self.dilations) if self.dilations else None,
            **shared,
            **{**self.cell_options, **extra},
        )

    def check(self) -> RNNSpec:
        """Import the cell and check its options by building a one-unit cell; returns self."""
        check_cell_options(resolve(self.cell), self.cell_options)
        RNNSpec(**{**self.__dict__, "hidden": 1, "layers": 1, "dilations": None}).build(1)
        return self

    def describe(self) -> str:
        """``2 x 256 lstm, bidirectional, zoneout 0.1``: for the first line of a run."""
        parts = [f"{self.layers} x {self.hidden} {self.cell}"]
        if self.bidirectional:
            parts.append("bidirectional")
        for name, off in SHARED_OPTIONS.items():
            value = getattr(self, name)
            if value != off:
                parts.append(name.replace("_", " ") + ("" if value is True else f" {value}"))
        if self.dilations:
            parts.append("dilations " + ",".join(map(str, self.dilations)))
        parts += [f"{k}={v}" for k, v in self.cell_options.items()]
        return ", ".join(parts)

    # -- config.json ------------------------------------------------------------
    @staticmethod
    def config_keys() -> tuple[str, ...]:
        """The keys a spec writes into config.json."""
        return _FIELDS

    def to_config(self) -> dict:
        values = dataclasses.asdict(self)
        values["dilations"] = list(self.dilations) if self.dilations else None
        return {key: values[key] for key in _FIELDS}

    @classmethod
    def from_config(cls, config: dict) -> RNNSpec:
        known = {f.name: f for f in dataclasses.fields(cls)}
        return cls(**{key: config[key] for key in _FIELDS if key in config and key in known})

    # -- the command line -------------------------------------------------------
    @staticmethod
    def add_arguments(group: argparse._ActionsContainer, **defaults) -> None:
        """The spec's options; ``defaults`` (cell, hidden, layers, dropout) sets a task's own."""
        from .tasks import options

        d = {"cell": "lstm", "hidden": 256, "layers": 1, "dropout": 0.0, **defaults}
        d = {k: "set by the task, see above" if v is None else v for k, v in d.items()}
        group.add_argument(
            "--cell",
            type=options.cell_name,
            default=defaults.get("cell", "lstm"),
            help="recurrent cell: elman, jordan, leaky, lstm, gru, a name registered with "
            f"rnnkit.cells.register, or package.module:Class (default {d['cell']})",
        )
        group.add_argument(
            "--cell-option",
            type=options.key_value,
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="an argument of the cell's own (repeatable), e.g. --cell-option nonlinearity=relu",
        )
        group.add_argument("--hidden", type=options.units, default=defaults.get("hidden", 256),
                           help=f"units per layer (default {d['hidden']})")  # fmt: skip
        group.add_argument("--layers", type=options.layers, default=defaults.get("layers", 1),
                           help=f"stacked layers (default {d['layers']})")  # fmt: skip
        group.add_argument("--bidirectional", action="store_true",
                           help="read sequences in both directions")  # fmt: skip
        group.add_argument("--dropout", type=options.dropout, default=defaults.get("dropout", 0.0),
                           help=f"dropout between layers and before the output "
                           f"(default {d['dropout']})")  # fmt: skip
        group.add_argument("--dilations", type=options.dilations,
                           help="one dilation per layer, e.g. 1,2,4 (sets --layers)")  # fmt: skip
        group.add_argument("--layer-norm", action="store_true",
                           help="layer normalisation of each gate's pre-activation")  # fmt: skip
        group.add_argument("--zoneout", type=options.dropout, default=0.0,
                           help="probability that a unit keeps its previous value (default 0)")  # fmt: skip
        group.add_argument("--recurrent-dropout", type=options.dropout, default=0.0,
                           help="variational dropout of the fed-back state (default 0)")  # fmt: skip
        group.add_argument("--transition-depth", type=options.count(1, 16), default=1,
                           help="depth of the hidden-to-hidden transition (default 1)")  # fmt: skip

    @staticmethod
    def resumed_options(config: dict) -> dict:
        """The spec's options as ``--resume`` takes them back from a run's config."""
        dilations = config.get("dilations")
        options = config.get("cell_options") or {}
        return {"dilations": tuple(dilations) if dilations else None,
                "cell_option": list(options.items())}  # fmt: skip

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RNNSpec:
        """The spec the command line asks for, its cell imported and its options checked."""
        layers = args.layers
        if args.dilations:
            given = getattr(args, "given", None) or set()
            if "layers" in given and layers != len(args.dilations):
                raise ValueError(
                    f"--dilations gives {len(args.dilations)} layers and --layers {layers}: "
                    "give one of them"
                )
            layers = len(args.dilations)
        return cls(
            cell=args.cell,
            hidden=args.hidden,
            layers=layers,
            bidirectional=args.bidirectional,
            dropout=args.dropout,
            dilations=tuple(args.dilations) if args.dilations else None,
            layer_norm=args.layer_norm,
            recurrent_dropout=args.recurrent_dropout,
            zoneout=args.zoneout,
            transition_depth=args.transition_depth,
            cell_options=dict(args.cell_option),
        ).check()


def parse_value(text: str) -> object:
    """A --cell-option value: a JSON number, true/false/null, or else the string itself."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, int | float | bool) or value is None else text
