"""What a Shtrih-M model is, as a host must know it: its FCh identity and its line width.

One fact per model, read by every layer: the emulator prints at its model's width and answers
FCh with its identity, the driver cuts its lines to the width of the model FCh names, and
``kkt info`` shows it.

Sources: protocol 1.17's FCh table (fact sheet §2.3: ШТРИХ-М-01Ф model 250, protocol 1.14); a
public capture of a live ШТРИХ-М-02Ф answering FCh ``00 00 01 0E FA 00`` + its name -- the same
model byte 250 as the М-01Ф, so the name tells the two apart (as pyshtrih's ``discovery`` does);
line widths (font 1) as pyshtrih 2.0.6 ``device.py`` ``DEFAULT_MAX_LENGTH`` gives them, 48 for
both -- the widths of JavaPOS's ``models.xml`` for the 80 mm models of that family (font 1 48,
font 2 24) agree.  The bold line of 12h is printed in the double-width font 2: half the line.
"""

from __future__ import annotations

from dataclasses import dataclass

CLASSIC_TEXT = 40  # bytes of the classic text field every model accepts (fact sheet §2.1)


@dataclass(frozen=True, slots=True)
class ShtrihModel:
    name: str  # as FCh answers it
    number: int  # FCh's model byte
    line_width: int  # characters per line, font 1

    @property
    def bold_width(self) -> int:
        """Characters per line of 12h's double-width font."""
        return self.line_width // 2


M01F = ShtrihModel("ШТРИХ-М-01Ф", 250, 48)
M02F = ShtrihModel("ШТРИХ-М-02Ф", 250, 48)

# The models the emulator can be; the first is its default.
MODELS: dict[str, ShtrihModel] = {model.name: model for model in (M01F, M02F)}

# Line width by FCh model byte, for a host that knows only the number (pyshtrih 2.0.6
# ``device.py``: ЛАЙТ-01Ф 32, РИТЕЙЛ-01Ф 42; model bytes 252 and 22 from protocol 1.17's FCh
# table).
LINE_WIDTHS = {250: 48, 252: 32, 22: 42}


def line_width(model_number: int) -> int:
    """Characters per line of the model FCh names; the classic 40 for a model not known."""
    return LINE_WIDTHS.get(model_number, CLASSIC_TEXT)


def model_named(name: str) -> ShtrihModel:
    """The model called ``name``; raises ValueError naming the ones there are."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"no Shtrih model {name!r}; choose one of: {', '.join(MODELS)}") from None
