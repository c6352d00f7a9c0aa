//! Finding the images under an Artifact Registry root (`LOCATION-docker.pkg.dev/PROJECT/REPO`)
//! with the Artifact Registry API (`dockerImages.list`), where `_catalog` is not the way to
//! enumerate a Google repository. Uses the official client; its endpoint can be overridden
//! (`DRIFTSWEEP_GCP_ARTIFACTREGISTRY_ENDPOINT`) so that a local server can stand in.

use google_cloud_artifactregistry_v1::client::ArtifactRegistry;
use google_cloud_gax::paginator::ItemPaginator as _;

/// `us-docker.pkg.dev/p/r[/prefix]` → (`projects/p/locations/us/repositories/r`, prefix).
pub fn parent_of(root: &str) -> Option<(String, String)> {
    let mut parts = root.splitn(4, '/');
    let host = parts.next()?;
    let location = host.strip_suffix("-docker.pkg.dev")?;
    let project = parts.next().filter(|p| !p.is_empty())?;
    let repository = parts.next().filter(|r| !r.is_empty())?;
    let prefix = parts.next().unwrap_or("").trim_matches('/').to_string();
    Some((
        format!("projects/{project}/locations/{location}/repositories/{repository}"),
        prefix,
    ))
}

/// A client for `endpoint` (the public API when `None`), with the run's credential.
pub async fn client(
    endpoint: Option<String>,
    auth: &super::gcp_live::GcpAuth,
) -> Result<ArtifactRegistry, String> {
    let mut builder = ArtifactRegistry::builder().with_credentials(auth.credentials());
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    builder
        .build()
        .await
        .map_err(|e| format!("Artifact Registry client: {e}"))
}

/// The image repositories (`host/project/repo/image`) under `root`, from every page.
pub async fn repositories(client: &ArtifactRegistry, root: &str) -> Result<Vec<String>, String> {
    let (parent, prefix) =
        parent_of(root).ok_or_else(|| format!("`{root}` is not an Artifact Registry root"))?;
    let mut images = client.list_docker_images().set_parent(&parent).by_item();
    let mut out = Vec::new();
    while let Some(image) = images.next().await {
        let image = image.map_err(|e| format!("dockerImages.list on `{parent}`: {e}"))?;
        let repository = image.uri.split('@').next().unwrap_or_default().to_string();
        let under = repository
            .strip_prefix(root.trim_end_matches('/'))
            .is_some_and(|rest| rest.starts_with('/'));
        if under || (prefix.is_empty() && repository.starts_with(root)) {
            out.push(repository);
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_map_to_repository_parents() {
        assert_eq!(
            parent_of("us-docker.pkg.dev/aia-prod/aia"),
            Some((
                "projects/aia-prod/locations/us/repositories/aia".into(),
                String::new()
            ))
        );
        assert_eq!(
            parent_of("europe-west1-docker.pkg.dev/p/r/team/"),
            Some((
                "projects/p/locations/europe-west1/repositories/r".into(),
                "team".into()
            ))
        );
        assert_eq!(parent_of("gcr.io/p"), None);
        assert_eq!(parent_of("us-docker.pkg.dev/p"), None);
    }
}
