//! A measure's own tables over the session's. The steps of a measure's detail are kept as tables
//! of their CTE names (`candidates`, `units`, `n0`); two measures computed side by side would
//! clash on those names in one session. Each measure's steps are registered in a session of its
//! own whose default schema reads through to the shared one (extracts, building blocks, inputs),
//! the same memory pool, functions and settings.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProviderList, MemorySchemaProvider,
    SchemaProvider, TableProvider,
};
use datafusion::error::Result;
use datafusion::execution::SessionStateBuilder;
use datafusion::prelude::SessionContext;

/// A session over `ctx`'s: tables registered in it are its own, and every table of `ctx` is
/// read through it (its own first, where a name is in both).
pub(crate) fn session_over(ctx: &SessionContext) -> SessionContext {
    let state = ctx.state();
    let options = state.config().options().catalog.clone();
    let base = state.catalog_list().clone();
    let list = MemoryCatalogProviderList::new();
    for name in base.catalog_names() {
        let Some(catalog) = base.catalog(&name) else {
            continue;
        };
        let catalog = if name == options.default_catalog {
            Arc::new(OverlayCatalog {
                base: catalog.clone(),
                schema_name: options.default_schema.clone(),
                schema: catalog.schema(&options.default_schema).map(|base| {
                    Arc::new(OverlaySchema {
                        base,
                        own: MemorySchemaProvider::new(),
                    }) as Arc<dyn SchemaProvider>
                }),
            }) as Arc<dyn CatalogProvider>
        } else {
            catalog
        };
        list.register_catalog(name, catalog);
    }
    let state = SessionStateBuilder::new_from_existing(state)
        .with_catalog_list(Arc::new(list))
        .build();
    SessionContext::new_with_state(state)
}

/// The shared catalog with its default schema overlaid.
#[derive(Debug)]
struct OverlayCatalog {
    base: Arc<dyn CatalogProvider>,
    schema_name: String,
    schema: Option<Arc<dyn SchemaProvider>>,
}

impl CatalogProvider for OverlayCatalog {
    fn schema_names(&self) -> Vec<String> {
        self.base.schema_names()
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == self.schema_name {
            self.schema.clone()
        } else {
            self.base.schema(name)
        }
    }
}

/// A schema's own tables over a shared one: registering and dropping touch only its own.
#[derive(Debug)]
struct OverlaySchema {
    base: Arc<dyn SchemaProvider>,
    own: MemorySchemaProvider,
}

#[async_trait]
impl SchemaProvider for OverlaySchema {
    fn table_names(&self) -> Vec<String> {
        let mut names = self.base.table_names();
        names.extend(self.own.table_names());
        names.sort();
        names.dedup();
        names
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        match self.own.table(name).await? {
            Some(table) => Ok(Some(table)),
            None => self.base.table(name).await,
        }
    }

    fn register_table(
        &self,
        name: String,
        table: Arc<dyn TableProvider>,
    ) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.register_table(name, table)
    }

    fn deregister_table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        self.own.deregister_table(name)
    }

    fn table_exist(&self, name: &str) -> bool {
        self.own.table_exist(name) || self.base.table_exist(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;

    fn table(v: i64) -> Arc<dyn TableProvider> {
        let batch =
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from(vec![v])) as _)]).unwrap();
        Arc::new(MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap())
    }

    async fn value(ctx: &SessionContext, sql: &str) -> i64 {
        let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
        batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(0)
    }

    #[tokio::test]
    async fn two_sessions_keep_their_own_tables_and_read_the_shared_ones() {
        let shared = SessionContext::new();
        shared.register_table("block", table(1)).unwrap();
        let (a, b) = (session_over(&shared), session_over(&shared));
        a.register_table("units", table(10)).unwrap();
        b.register_table("units", table(20)).unwrap();
        assert_eq!(value(&a, "SELECT v FROM units").await, 10);
        assert_eq!(value(&b, "SELECT v FROM units").await, 20);
        assert_eq!(value(&a, "SELECT v FROM block").await, 1);
        // Nothing registered beside the shared session reaches it.
        assert!(!shared.table_exist("units").unwrap());
        // A table the shared session gains later is read through.
        shared.register_table("later", table(3)).unwrap();
        assert_eq!(value(&b, "SELECT v FROM later").await, 3);
        // Dropping its own table leaves the shared one of that name.
        a.register_table("block", table(5)).unwrap();
        assert_eq!(value(&a, "SELECT v FROM block").await, 5);
        a.deregister_table("block").unwrap();
        assert_eq!(value(&a, "SELECT v FROM block").await, 1);
    }
}
