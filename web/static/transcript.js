// The transcript pane: segments in time order, each labelled with its speaker. An interim
// segment is replaced by any later one with the same id, and a final by its refined version.

const SPEAKERS = { caller: 'Caller', agent: 'Agent' };

export class Transcript {
  constructor(list) {
    this.list = list;
    this.byId = new Map();
  }

  get size() {
    return this.byId.size;
  }

  clear() {
    this.byId.clear();
    this.list.replaceChildren();
  }

  has(id) {
    return this.byId.has(String(id));
  }

  upsert(seg) {
    const id = String(seg.id);
    let li = this.byId.get(id);
    if (seg.final && !seg.text) {
      // What was shown turned out to be no words.
      li?.remove();
      this.byId.delete(id);
      return;
    }
    if (!li) {
      li = document.createElement('li');
      li.dataset.id = id;
      li.append(document.createElement('b'), ' ', document.createElement('span'));
      this.byId.set(id, li);
    }
    li.dataset.speaker = seg.speaker;
    li.dataset.start = String(seg.start_ms ?? 0);
    li.classList.toggle('interim', !seg.final);
    li.classList.toggle('final', !!seg.final);
    li.classList.toggle('cut', !!seg.cut); // an agent line the caller cut short
    li.classList.toggle('refined', !!seg.refined);
    li.title = seg.cut ? 'cut short by the caller: what was heard' : seg.refined ? 'refined' : '';
    li.firstChild.textContent = `${SPEAKERS[seg.speaker] || seg.speaker || '?'}:`;
    li.lastChild.textContent = seg.text ?? '';
    this.place(li, Number(li.dataset.start));
  }

  place(li, start) {
    const stick = this.list.scrollTop + this.list.clientHeight >= this.list.scrollHeight - 4;
    let after = this.list.lastElementChild;
    while (after && (after === li || Number(after.dataset.start) > start)) {
      after = after.previousElementSibling;
    }
    if (after) {
      if (after.nextElementSibling !== li) after.after(li);
    } else if (this.list.firstElementChild !== li) {
      this.list.prepend(li);
    }
    if (stick) this.list.scrollTop = this.list.scrollHeight;
  }
}
