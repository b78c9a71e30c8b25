// A minimal Node.js host: one client-credentials connection, one API call with its token.
//
//   node dist-examples/minimal.js TOKEN_URL API_URL CLIENT_ID
// with the client secret in the CLIENT_SECRET environment variable.
import { connection, OAuth2Error, OAuth2Plugin } from '@oauth2-plugin/node-host';

const [tokenUrl, apiUrl, clientId] = process.argv.slice(2);
if (!tokenUrl || !apiUrl || !clientId) {
  console.error('usage: minimal.js TOKEN_URL API_URL CLIENT_ID (CLIENT_SECRET in the environment)');
  process.exit(2);
}

// The platform's secret store: here, one secret from the environment.
const plugin = new OAuth2Plugin({
  secrets: (name) => (name === 'client-secret' ? process.env.CLIENT_SECRET : undefined),
});
const config = connection({
  grantType: 'client-credentials',
  tokenUrl,
  clientId,
  clientSecretName: 'client-secret',
  scope: 'read',
});

try {
  // The token is fetched on the first call, then served from the store until it expires; a 401
  // drops it and the request goes once more with a new one.
  const response = await plugin.fetch(config, apiUrl);
  console.log(response.status, await response.text());
} catch (error) {
  if (!(error instanceof OAuth2Error)) throw error;
  // error.error is the WIT oauth-error to match on; the message says what to check.
  console.error(`${error.error.tag}: ${error.message}`);
  process.exitCode = 1;
} finally {
  await plugin.close();
}
