import { describe, expect, it } from 'vitest';
import { harness, ready, until } from './helpers/browser.ts';

describe('examples/shop with the snippet', { timeout: 60_000 }, () => {
  const h = harness();

  it('a visit from the product list to a completed order sends the whole story under one anonymousId', async () => {
    const page = await h.context.newPage();
    const errors: Error[] = [];
    page.on('pageerror', (e) => errors.push(e));
    await page.goto(`${h.rec.origin}/demo/`);
    await ready(page);
    await page.click('text=Analytics only');
    await page.click('text=Cairn mug');
    await page.click('#add');
    await page.click('text=View cart');
    await page.click('#checkout');
    await page.fill('input[name=email]', 'ada@example.com');
    await page.fill('input[name=name]', 'Ada');
    await page.click('text=Place order');
    await page.waitForSelector('#thanks:not([hidden])');
    const expected = [
      'Consent Updated',
      'Product List Viewed',
      'Product Viewed',
      'Product Added',
      'Cart Viewed',
      'Checkout Started',
      'Order Completed',
    ];
    await until(() => expected.every((n) => h.rec.delivered().some((e) => e.event === n)), 'the shop events');
    const events = h.rec.delivered();
    expect(events.filter((e) => e.type === 'page').map((e) => e.properties!.path)).toEqual(
      expect.arrayContaining(['/demo/', '/demo/product.html', '/demo/cart.html', '/demo/checkout.html']),
    );
    expect(events.find((e) => e.type === 'identify')!.traits).toEqual({ email: 'ada@example.com', name: 'Ada' });
    expect(events.find((e) => e.event === 'Order Completed')).toMatchObject({
      properties: { total: 12, currency: 'EUR', products: [{ product_id: 'p1', quantity: 1 }] },
      context: { consent: { categoryPreferences: { analytics: true, marketing: false } } },
    });
    expect(new Set(events.map((e) => e.anonymousId)).size).toBe(1);
    expect(errors).toEqual([]);
  });
});
