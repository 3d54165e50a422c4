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
		bucketDPoPProofs, bucketDPoPSecrets, bucketAccounts,
	}
}

// Topics are every topic the state layer publishes on.
func Topics() []string { return []string{topicDenied} }
