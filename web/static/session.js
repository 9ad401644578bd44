// The signed-in user in the page header (GET /api/v1/me); logging out is a plain form.

import { me } from './api.js';

export async function showUser(el = document.getElementById('user')) {
  try {
    const { user } = await me();
    el.textContent = user;
  } catch {
    el.textContent = '';
  }
}
