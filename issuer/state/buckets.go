package state

import "github.com/tollgate-auth/tollgate/issuer/store"

// Buckets are every bucket the state layer uses (the table in doc.go), so that a metrics label
// can name them and nothing else. Package keys has one more, keys.Bucket.
func Buckets() []store.Bucket {
	return []store.Bucket{
		bucketCodes, bucketRedeemedCodes, bucketDeviceRedeemed,
		bucketDeviceCodes, bucketDeviceUserCodes, bucketDevicePolls, bucketDeviceDecisions, bucketDeviceLinks,
		bucketFamilies, bucketRevokedBefore, bucketRevokedAccessTokens,
		bucketSessions, bucketPending, bucketPushed, bucketConsents,
		bucketThrottle, bucketSignInAddresses, bucketClients, bucketAssertions,
		bucketDPoPProofs, bucketDPoPSecrets, bucketAccounts, bucketUpstreamLogins,
		bucketPasskeys, bucketPasskeyUsers, bucketPasskeyCeremonies,
	}
}

// DurableBuckets are the buckets whose writes must survive a failover of a replicated store:
// what an issuer has promised (refresh families, registered clients) or must never forget
// (redeemed codes, revocations). A store that replicates waits for a replica after each
// write to one of them before it acknowledges it. Package keys adds keys.Bucket.
func DurableBuckets() []store.Bucket {
	return []store.Bucket{
		bucketFamilies, bucketRedeemedCodes, bucketDeviceRedeemed,
		bucketRevokedBefore, bucketRevokedAccessTokens, bucketClients,
		bucketPasskeys, bucketPasskeyUsers, // a lost credential or user handle locks a passkey out
		bucketAccounts, // an upstream user's refresh tokens need the account until the next sign-in
	}
}

// Topics are every topic the state layer publishes on.
func Topics() []string { return []string{topicDenied} }
