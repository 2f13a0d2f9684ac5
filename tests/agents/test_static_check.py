"""The static check (`agent_code.check`): what it refuses, with a message that says why, and
the ordinary code it lets through (a generated agent must not be refused for being plain)."""

from __future__ import annotations

import pytest

from controller.clients.agent_code import check

RUN = "\n\n\ndef run(task):\n    return {}\n"

REFUSED = {
    "random._os": ("import random\n\n\ndef run(task):\n    return random._os\n",
                   "the attribute _os is private"),
    "self._x": ("class A:\n    def __init__(self):\n        self._x = 1\n" + RUN,
                "the attribute _x is private"),
    "contextlib.os": ("import contextlib\n\n\ndef run(task):\n    return contextlib.os\n",
                      "contextlib.os reaches the module os through contextlib"),
    "typing.sys.modules": ("import typing\n\n\ndef run(task):\n"
                           "    return typing.sys.modules['ctypes']\n",
                           "typing.sys reaches the module sys through typing"),
    "json.decoder.re": ("import json\n\n\ndef run(task):\n    return json.decoder.re\n",
                        "json.decoder.re reaches the module re through json.decoder"),
    "from contextlib import os": ("from contextlib import os\n" + RUN,
                                  "from contextlib import os reaches the module os"),
    "aliased module": ("import contextlib as c\n\n\ndef run(task):\n    return c.os\n",
                       "c.os reaches the module os through contextlib"),
    "attrgetter private": ("import operator\nimport random\n\n\ndef run(task):\n"
                           "    return operator.attrgetter('_os')(random)\n",
                           "attrgetter() with '_os' reaches the interpreter's internals"),
    "attrgetter module": ("import operator\nimport contextlib\n\n\ndef run(task):\n"
                          "    return operator.attrgetter('os.environ')(contextlib)\n",
                          "attrgetter() with 'os' reaches another module"),
    "attrgetter computed": ("from operator import attrgetter\n\n\ndef run(task):\n"
                            "    return attrgetter(task.input)(task)\n",
                            "attrgetter() needs literal attribute names"),
    "methodcaller private": ("import operator\n\n\ndef run(task):\n"
                             "    return operator.methodcaller('_x')(task)\n",
                             "methodcaller() with '_x' reaches"),
    "getattr private": ("import random\n\n\ndef run(task):\n"
                        "    return getattr(random, '_os')\n", "getattr() with '_os'"),
    "getattr module": ("import contextlib\n\n\ndef run(task):\n"
                       "    return getattr(contextlib, 'os')\n", "getattr() with 'os'"),
    "getattr computed": ("def run(task):\n    return getattr(task, task.input)\n",
                         "getattr() needs a literal attribute name"),
    "getattr as a value": ("def run(task):\n    g = getattr\n    return g(task, 'x')\n",
                           "getattr may only be called directly"),
    "eval as a value": ("def run(task):\n    return [eval][0]('1')\n",
                        "eval may only be called directly"),
    "frames": ("def run(task):\n    def g():\n        yield 1\n    return g().gi_frame\n",
               "the attribute gi_frame reaches the interpreter's frames"),
    "traceback frames": ("def run(task):\n    try:\n        1 / 0\n    except Exception as e:\n"
                         "        return e.with_traceback(None).tb_frame\n",
                         "tb_frame reaches the interpreter's frames"),
    "dunder": ("def run(task):\n    return ().__class__\n", "the attribute __class__ is private"),
    "builtins key": ("def run(task):\n    return task.input['__builtins__']\n",
                     "the key '__builtins__'"),
    "string annotation": ("import typing\n\n\ndef f(x: \"__import__('os')\"):\n    pass\n" + RUN,
                          "is more than a type name"),
    "get_type_hints": ("import typing\n\n\ndef run(task):\n"
                       "    return typing.get_type_hints(run)\n", "get_type_hints evaluates"),
    "Formatter.get_field": ("import string\n\n\ndef run(task):\n"
                            "    return string.Formatter().get_field('0._os', [1], {})\n",
                            "get_field evaluates text as code"),
    "import os": ("import os\n" + RUN, "import os is not allowed"),
    # found by a hostile pass: each passed the check and then reached os and sys
    "class pattern": ("import contextlib\n\n\ndef run(task):\n"
                      "    match contextlib.contextmanager:\n"
                      "        case object(__globals__=g):\n            return g\n",
                      "a class pattern() with '__globals__' reaches"),
    "class pattern module": ("import contextlib\n\n\ndef run(task):\n    match contextlib:\n"
                             "        case object(os=o):\n            return o\n",
                             "a class pattern() with 'os' reaches another module"),
    "Formatter subclass": ("import contextlib\nimport string\n\n\nclass Grab(string.Formatter):"
                           "\n    pass\n\n\ndef run(task):\n    return Grab().format("
                           "'{0.__globals__[sys]}', contextlib.contextmanager)\n",
                           "Formatter evaluates text as code"),
    "format field": ("def run(task):\n    return '{0.__globals__[os]}'.format(run)\n",
                     "the format field {0.__globals__[os]} reaches __globals__"),
    "from string import Formatter": ("from string import Formatter\n\n\ndef run(task):\n"
                                     "    return Formatter\n", "Formatter evaluates text"),
    "import ctypes": ("import ctypes\n" + RUN, "import ctypes is not allowed"),
    "exec": ("def run(task):\n    exec('1')\n", "exec() is not allowed"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_reaching_past_the_names_given_is_refused_with_the_reason(case: str) -> None:
    code, expected = REFUSED[case]
    problems = [str(p) for p in check(code)]
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("agent.py:") for p in problems)


PLAIN = '''import collections.abc
import datetime
import json
import random
import re
import typing
import zoneinfo
from collections import abc, defaultdict
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter, methodcaller


@dataclass
class Price:
    symbol: str
    value: float = 0.0
    seen: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.symbol = self.symbol.upper()


def _helper(values: "list[float]") -> typing.Optional[float]:
    return max(values) if values else None


def run(task):
    _ = json.decoder.JSONDecodeError, collections.abc.Mapping, abc.Sequence
    counts = defaultdict(int)
    for word in re.findall(r"\\w+", str(task.input)):
        counts[word] += 1
    prices = sorted([Price("a", 2.0), Price("b", 1.0)], key=attrgetter("value"))
    now = datetime.datetime.now(zoneinfo.ZoneInfo("UTC"))
    return {"top": _helper([p.value for p in prices]), "n": len(counts), "at": now.isoformat(),
            "upper": methodcaller("upper")("x"), "first": itemgetter(0)(prices).symbol,
            "pick": random.choice([1, 2]), "name": getattr(task, "input"), "module": __name__}
'''


def test_plain_code_passes() -> None:
    assert [str(p) for p in check(PLAIN)] == []
