"""Reading a page as a person's browser would: its links and its forms (action, fields,
labels), from the HTML the server sent. Test helper; no network."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str] = field(default_factory=dict)
    ids: dict[str, str] = field(default_factory=dict)  # control id -> its name


@dataclass
class Seen:
    links: list[tuple[str, str]] = field(default_factory=list)  # (href, text)
    forms: list[Form] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)  # for= -> the label's text

    def hrefs(self) -> list[str]:
        return [href for href, _ in self.links]

    def form(self, action: str) -> Form | None:
        return next((f for f in self.forms if f.action == action), None)


class _Reader(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.seen = Seen()
        self._link: list[str] | None = None
        self._href = ""
        self._label: list[str] | None = None
        self._for = ""
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "a" and "href" in a:
            self._link, self._href = [], a["href"]
        elif tag == "form":
            self.seen.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag in ("input", "select", "textarea") and self.seen.forms and "name" in a:
            form = self.seen.forms[-1]
            form.fields[a["name"]] = a.get("value", "")
            if "id" in a:
                form.ids[a["id"]] = a["name"]
            if tag == "textarea":
                self._textarea = a["name"]
        elif tag == "label":
            self._label, self._for = [], a.get("for", "")

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._link is not None:
            self.seen.links.append((self._href, "".join(self._link).strip()))
            self._link = None
        elif tag == "label" and self._label is not None:
            self.seen.labels[self._for] = "".join(self._label).strip()
            self._label = None
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        for part in (self._link, self._label):
            if part is not None:
                part.append(data)
        if self._textarea is not None and self.seen.forms:
            self.seen.forms[-1].fields[self._textarea] += data


def read(html: str) -> Seen:
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader.seen
