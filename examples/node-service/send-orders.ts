/**
 * Sends a few server-side `Order Completed` events to Cairn, then closes the client (which waits until every event
 * was delivered or definitively failed).
 *
 *   CAIRN_HOST=http://localhost:8787 CAIRN_WRITE_KEY=wk_... npm start -w @cairn/example-node-service
 */
import { Cairn } from '@cairn/node';

const writeKey = process.env.CAIRN_WRITE_KEY;
if (!writeKey) {
  console.error('Set CAIRN_WRITE_KEY to a source write key (and CAIRN_HOST if the server is not on localhost:8787).');
  process.exit(1);
}

const cairn = new Cairn({ writeKey, host: process.env.CAIRN_HOST ?? 'http://localhost:8787', maxRetries: 3 });

let failed = 0;
cairn.on('error', (err) => {
  failed += err.messages.length;
  console.error(`cairn: ${err.code}: ${err.message}`);
});
let delivered = 0;
cairn.on('sent', ({ messages }) => {
  delivered += messages.length;
});

const orders = [
  {
    userId: 'user_1001',
    order_id: 'ord_5001',
    currency: 'EUR',
    products: [
      { product_id: 'sku_tea', name: 'Green tea 250 g', price: 12.5, quantity: 2 },
      { product_id: 'sku_cup', name: 'Stoneware cup', price: 18, quantity: 1 },
    ],
  },
  {
    userId: 'user_1002',
    order_id: 'ord_5002',
    currency: 'USD',
    products: [{ product_id: 'sku_kettle', name: 'Gooseneck kettle', price: 64.9, quantity: 1 }],
  },
];

for (const { userId, order_id, currency, products } of orders) {
  const total = Math.round(products.reduce((sum, p) => sum + p.price * p.quantity, 0) * 100) / 100;
  cairn.identify({ userId, traits: { last_order_id: order_id } });
  cairn.track({
    userId,
    event: 'Order Completed',
    // Use the order id as messageId: if this script is re-run for the same order, the server stores it once.
    messageId: `order-completed-${order_id}`,
    properties: { order_id, total, revenue: total, currency, products },
  });
}

await cairn.close();
console.log(`delivered ${delivered} messages, ${failed} failed`);
process.exitCode = failed > 0 ? 1 : 0;
