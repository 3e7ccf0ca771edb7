// The demo shop's shared bits: the catalogue, a cart in localStorage, and a consent banner. Analytics calls
// live in each page, next to the action they describe, so the pages read as examples of the snippet's API.

const PRODUCTS = [
  { product_id: 'p1', sku: 'CAIRN-MUG', name: 'Cairn mug', price: 12, category: 'Kitchen' },
  { product_id: 'p2', sku: 'CAIRN-TEE', name: 'Cairn t-shirt', price: 25, category: 'Clothing' },
  { product_id: 'p3', sku: 'CAIRN-CAP', name: 'Trail cap', price: 18, category: 'Clothing' },
  { product_id: 'p4', sku: 'CAIRN-MAP', name: 'Hiking map', price: 9, category: 'Outdoors' },
];

const shop = {
  product: (id) => PRODUCTS.find((p) => p.product_id === id),
  cart: () => JSON.parse(localStorage.getItem('shop_cart') || '[]'),
  saveCart: (items) => localStorage.setItem('shop_cart', JSON.stringify(items)),
  add(product) {
    const items = shop.cart();
    const line = items.find((i) => i.product_id === product.product_id);
    if (line) line.quantity++;
    else items.push({ ...product, quantity: 1 });
    shop.saveCart(items);
  },
  total: (items) => items.reduce((sum, i) => sum + i.price * i.quantity, 0),
  money: (n) => `€${n.toFixed(2)}`,
};

// A minimal consent banner: the choice goes to Cairn as consent purposes (sent as a `Consent Updated` event and
// carried by every later event in context.consent.categoryPreferences).
function consentBanner(force) {
  if (!force && localStorage.getItem('shop_consent_choice')) return;
  const banner = document.createElement('div');
  banner.className = 'banner';
  banner.innerHTML =
    '<span>We use analytics to improve the shop and, if you agree, marketing emails.</span>' +
    '<button type="button" data-choice="all">Accept all</button>' +
    '<button type="button" data-choice="analytics">Analytics only</button>' +
    '<button type="button" data-choice="none">Reject all</button>';
  banner.addEventListener('click', (e) => {
    const choice = e.target.dataset?.choice;
    if (!choice) return;
    cairn.consent({ analytics: choice !== 'none', marketing: choice === 'all' });
    localStorage.setItem('shop_consent_choice', choice);
    banner.remove();
  });
  document.body.append(banner);
}

document.addEventListener('DOMContentLoaded', () => {
  consentBanner(false);
  document.querySelector('#privacy')?.addEventListener('click', () => consentBanner(true));
  const count = shop.cart().reduce((n, i) => n + i.quantity, 0);
  const badge = document.querySelector('#cart-count');
  if (badge) badge.textContent = String(count);
});
