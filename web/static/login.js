// The login form posts without script; this only carries `next` through and says why
// the last attempt failed (the page is static: the server redirects with ?error=).

const ERRORS = {
  invalid: 'Wrong username or password.',
  throttled: 'Too many attempts from this address. Wait a minute, then try again.',
};

// The server's rule for `next` (cs_auth_next_ok in src/http/auth.c): a path of this site,
// as given and after each percent-decoding, starting with a single '/' then neither '/'
// nor '\', with no control character or backslash anywhere (browsers drop tabs and
// newlines from URLs and read '\' as '/', so "/\t/evil" would lead to //evil). Both are
// tested over one table of values, tests/data/next.txt.
const NEXT_MAX = 1024;
const NEXT_DECODES = 4;
const stageOk = (s) => /^\/[^/\\]/.test(s) && !/[\x00-\x1f\x7f\\]/.test(s);

export function safeNext(value) {
  if (!value || value.length >= NEXT_MAX) return null;
  for (let s = value, decoded = 0; ; decoded++) {
    if (!stageOk(s)) return null;
    if (!s.includes('%')) return value;
    if (decoded === NEXT_DECODES || /%(?![0-9a-fA-F]{2})/.test(s)) return null;
    s = s.replace(/%([0-9a-fA-F]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16)));
  }
}

const params = new URLSearchParams(location.search);
const next = safeNext(params.get('next'));
if (next) document.getElementById('next').value = next;
const error = ERRORS[params.get('error')];
if (error) {
  const el = document.getElementById('error');
  el.textContent = error;
  el.hidden = false;
  document.getElementById(params.get('error') === 'invalid' ? 'password' : 'username').focus();
}
