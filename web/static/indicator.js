// The connection/call state shown in #state: its text for people, data-state for tests
// and styling. "Reconnecting in N s" counts down by itself; screen readers hear only the
// changes of state, through a hidden live region beside it.

const LABELS = {
  connecting: 'Connecting…',
  connected: 'Connected',
  live: 'Live',
  reconnecting: 'Reconnecting',
  ended: 'Call ended',
  closed: 'Disconnected',
  missing: 'No such call',
};

export class StateIndicator {
  constructor(el) {
    this.el = el;
    this.announcer = document.createElement('span');
    this.announcer.className = 'visually-hidden';
    this.announcer.setAttribute('role', 'status');
    el.after(this.announcer);
    this.state = '';
    this.countdown = 0;
  }

  /** `retryAt` (ms since the epoch) for 'reconnecting'. */
  set(state, retryAt = 0) {
    clearInterval(this.countdown);
    if (state !== this.state) this.announcer.textContent = LABELS[state] || state;
    this.state = state;
    this.el.dataset.state = state;
    if (state === 'reconnecting' && retryAt) {
      const show = () => {
        const s = Math.max(0, Math.ceil((retryAt - Date.now()) / 1000));
        this.el.textContent = s > 0 ? `Reconnecting in ${s} s` : 'Reconnecting…';
      };
      show();
      this.countdown = setInterval(show, 250);
    } else {
      this.el.textContent = LABELS[state] || state;
    }
  }
}
