// The login form posts without script; this only carries `next` through and says why
// the last attempt failed (the page is static: the server redirects with ?error=).

const ERRORS = {
  invalid: 'Wrong username or password.',
  throttled: 'Too many attempts from this address. Wait a minute, then try again.',
};

const params = new URLSearchParams(location.search);
const next = params.get('next');
if (next && next.startsWith('/') && !next.startsWith('//')) {
  document.getElementById('next').value = next;
}
const error = ERRORS[params.get('error')];
if (error) {
  const el = document.getElementById('error');
  el.textContent = error;
  el.hidden = false;
  document.getElementById(params.get('error') === 'invalid' ? 'password' : 'username').focus();
}
